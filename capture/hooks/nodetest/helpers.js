'use strict';
// Shared helpers of the Node hook tests (node --test capture/hooks/nodetest/).
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

// RL_TEST_NODE_HOOK runs the tests against another copy of the hook (to
// check that they fail against broken ones).
const HOOK = path.resolve(process.env.RL_TEST_NODE_HOOK || path.join(__dirname, '../node/replaylink-hook.js'));
const APPS = path.resolve(__dirname, '../testdata/node');

function randomHex(bytes) {
  for (;;) {
    const h = crypto.randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
}

// env returns the environment of a backend: with the hook preloaded when
// hook is true, and REPLAYLINK_HOOK_NONCE=nonce when nonce is a string.
function env({ hook = true, nonce, extra = {} } = {}) {
  const e = { ...process.env, NODE_ENV: 'development' };
  for (const k of Object.keys(e)) {
    if (k.startsWith('REPLAYLINK_HOOK_') || k === 'NODE_OPTIONS' || k.startsWith('NODE_TEST')) delete e[k];
  }
  if (hook) e.NODE_OPTIONS = '--require=' + HOOK;
  if (typeof nonce === 'string') e.REPLAYLINK_HOOK_NONCE = nonce;
  return Object.assign(e, extra);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(what + ': no answer in ' + ms + ' ms')), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// run starts node with args in APPS and resolves, once it exits, with its
// stdout, stderr (Buffers) and exit code. It is killed after ms.
function run(args, envv, { ms = 20000, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: APPS, env: envv, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), code, signal });
    });
    child.stdin.end(input);
  });
}

// startApp starts a test backend on a free loopback port and resolves once
// it printed "listening on PORT". stop() ends it and resolves with all it
// printed.
async function startApp(file, envv, { readyMs = 20000 } = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [file, String(port)], { cwd: APPS, env: envv, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  const err = [];
  let closed = false;
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      closed = true;
      resolve({ code, signal });
    });
  });
  const ready = new Promise((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (c) => {
      out.push(c);
      if (seen !== null) {
        seen += c.toString('latin1');
        if (/(^|\n)(\x1b_[^\x1b]*\x1b\\)?listening on \d+\n/.test(seen)) {
          seen = null;
          resolve();
        }
      }
    });
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', reject);
    done.then(() => reject(new Error(file + ' exited before listening:\n' + Buffer.concat(err).toString())));
  });
  const stop = async () => {
    if (!closed) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    }
    return { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  };
  try {
    await withTimeout(ready, readyMs, file + ' start');
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, child, stop, output: () => ({ stdout: Buffer.concat(out), stderr: Buffer.concat(err) }) };
}

// request sends one request and resolves with { status, body }.
function request(port, { method = 'GET', path: p, headers = {}, body, agent, ms = 15000 }) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error('request timed out: ' + method + ' ' + p)));
    req.on('error', reject);
    req.end(body);
  });
}

function traceparent(span) {
  return '00-' + randomHex(16) + '-' + span + '-01';
}

// markRe matches a mark of nonce at the start of a line.
function markRe(nonce) {
  return new RegExp('^\\x1b_rl1;' + nonce + ';([rd])([0-9a-f]{16})\\x1b\\\\');
}
function anyMarkRe(nonce) {
  return new RegExp('\\x1b_rl1;' + nonce + ';[rd][0-9a-f]{16}\\x1b\\\\', 'g');
}

// strip removes every mark of nonce from b, as replaylink's StripWriter.
function strip(b, nonce) {
  return Buffer.from(b.toString('latin1').replace(anyMarkRe(nonce), ''), 'latin1');
}

// lines splits output into its lines (without '\n'); a last line without
// newline is kept.
function lines(b) {
  const s = b.toString('utf8');
  const l = s.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}

// parseLine returns { kind, span, text } of a line: kind and span of the
// mark at its start (null when there is none), text the rest.
function parseLine(line, nonce) {
  const m = markRe(nonce).exec(line);
  if (!m) return { kind: null, span: null, text: line };
  return { kind: m[1], span: m[2], text: line.slice(m[0].length) };
}

async function eventually(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const r = check();
    if (r === true) return;
    if (Date.now() > end) throw new Error(what + ': ' + r);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

module.exports = {
  HOOK, APPS, randomHex, env, freePort, withTimeout, run, startApp, request, traceparent,
  markRe, anyMarkRe, strip, lines, parseLine, eventually,
};
