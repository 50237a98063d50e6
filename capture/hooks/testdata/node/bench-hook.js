'use strict';
// Benchmark of replaylink's Node hook: µs per line written to stdout (a
// pipe, read and dropped by this process) from inside a request handler,
// without the hook, with the hook inert (no nonce), with the hook but a
// request without traceparent (no context), and in a request's context
// (every line marked).
//
//   node capture/hooks/testdata/node/bench-hook.js [lines per run, default 100000]
//
// Prints one row per way of writing: console.log, process.stdout.write,
// fs.writeSync(1); the last column is the cost of marking a line.
const { spawn } = require('child_process');
const path = require('path');

const HOOK = path.resolve(__dirname, '../../node/replaylink-hook.js');
const LINE = 'GET /api/items?id=12345 200 1.234 ms - some typical log text\n';
const KINDS = ['console.log', 'stdout.write', 'fs.writeSync'];
const MODES = ['no hook', 'inert', 'no context', 'in context'];

if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4] === 'traced', Number(process.argv[5]));
} else {
  main(Number(process.argv[2]) || 100000).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

function child(kind, traced, n) {
  const http = require('http');
  const fs = require('fs');
  const text = LINE.slice(0, -1);
  const write = {
    'console.log': () => console.log(text),
    'stdout.write': () => process.stdout.write(LINE),
    'fs.writeSync': () => fs.writeSync(1, LINE),
  }[kind];
  const loop = (count) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) write();
    return Number(process.hrtime.bigint() - t0) / 1000 / count;
  };
  const server = http.createServer((req, res) => {
    loop(Math.ceil(n / 10)); // warm up
    const us = loop(n);
    fs.writeSync(2, JSON.stringify({ us }) + '\n');
    res.end();
    server.close();
  });
  server.listen(0, '127.0.0.1', () => {
    const headers = traced ? { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } : {};
    http.get({ host: '127.0.0.1', port: server.address().port, headers, agent: false }, (res) => res.resume());
  });
}

function runChild(kind, mode, n) {
  const env = { ...process.env };
  delete env.REPLAYLINK_HOOK_NONCE;
  delete env.REPLAYLINK_HOOK_NONCE_FILE;
  if (mode !== 'no hook') env.NODE_OPTIONS = ((env.NODE_OPTIONS || '') + ' --require=' + JSON.stringify(HOOK)).trim();
  if (mode === 'no context' || mode === 'in context') env.REPLAYLINK_HOOK_NONCE = '0123456789abcdef';
  const traced = mode === 'no hook' || mode === 'inert' || mode === 'in context';
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [__filename, '--child', kind, traced ? 'traced' : 'untraced', String(n)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let err = '';
    p.stdout.on('data', (c) => { bytes += c.length; });
    p.stderr.on('data', (c) => { err += c; });
    const t = setTimeout(() => p.kill('SIGKILL'), 120000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      const m = /\{"us":[^}]*\}/.exec(err);
      if (code !== 0 || !m) return reject(new Error(kind + ' / ' + mode + ': exit ' + code + ' ' + err));
      const want = Math.ceil(n / 10) + n;
      const marked = mode === 'in context';
      const perLine = LINE.length + (marked ? 42 : 0);
      if (bytes !== want * perLine) return reject(new Error(kind + ' / ' + mode + ': ' + bytes + ' bytes out, want ' + want * perLine));
      resolve(JSON.parse(m[0]).us);
    });
  });
}

async function main(n) {
  console.log(`replaylink Node hook: µs per line (${LINE.length} bytes to a pipe), ${n} lines per run, best of 3, node ${process.version}`);
  const w = 14;
  console.log('write'.padEnd(w) + MODES.map((m) => m.padStart(12)).join('') + '   marking'.padStart(12));
  for (const kind of KINDS) {
    const best = {};
    for (const mode of MODES) {
      let b = Infinity;
      for (let i = 0; i < 3; i++) b = Math.min(b, await runChild(kind, mode, n));
      best[mode] = b;
    }
    const delta = best['in context'] - best['no hook'];
    console.log(kind.padEnd(w) + MODES.map((m) => best[m].toFixed(3).padStart(12)).join('') + ((delta >= 0 ? '+' : '') + delta.toFixed(3)).padStart(12));
  }
}
