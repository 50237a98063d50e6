'use strict';
// HTTP/2 (h2c): the compatibility API ('request') and the core API
// ('stream'), concurrent streams on one session, request bodies read in
// 'data' events and lines printed on 'finish' / 'close'.
const { it } = require('node:test');
const assert = require('node:assert/strict');
const http2 = require('node:http2');
const h = require('./helpers');

const server = `
  const http2 = require('http2');
  const compat = http2.createServer((req, res) => {
    const tag = new URL(req.url, 'http://x').searchParams.get('tag');
    console.log('compat start ' + tag);
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => {
      console.log('compat body ' + tag + ' ' + n);
      setTimeout(() => {
        console.error('compat end ' + tag);
        res.end('ok');
      }, 10 + (n % 30));
    });
    res.on('finish', () => console.log('compat finish ' + tag + ' ' + res.statusCode));
  });
  const core = http2.createServer();
  core.on('stream', (stream, headers) => {
    const tag = new URL(headers[':path'], 'http://x').searchParams.get('tag');
    console.log('core start ' + tag);
    let n = 0;
    stream.on('data', (c) => { n += c.length; });
    stream.on('end', () => {
      setTimeout(() => {
        console.error('core end ' + tag + ' ' + n);
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }, 10 + (n % 30));
    });
    stream.on('close', () => console.log('core close ' + tag));
  });
  compat.listen(0, '127.0.0.1', () => core.listen(0, '127.0.0.1', () => {
    console.log('listening on ' + compat.address().port + ' ' + core.address().port);
  }));
`;

function send(session, tag, span, size) {
  return new Promise((resolve, reject) => {
    const headers = { ':method': 'POST', ':path': '/x?tag=' + tag };
    if (span) headers.traceparent = h.traceparent(span);
    const s = session.request(headers);
    let status;
    s.on('response', (hd) => { status = hd[':status']; });
    s.on('data', () => {});
    s.on('end', () => resolve(status));
    s.on('error', reject);
    s.setTimeout(15000, () => s.close(http2.constants.NGHTTP2_CANCEL));
    s.end('z'.repeat(size));
  });
}

it('http2 compat and core APIs: every line of a stream carries its span', { timeout: 60000 }, async () => {
  const { spawn } = require('node:child_process');
  const nonce = h.randomHex(8);
  const proc = spawn(process.execPath, ['-e', server], { cwd: h.APPS, env: h.env({ nonce }), stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 50000);
  const out = [];
  const err = [];
  proc.stdout.on('data', (c) => out.push(c));
  proc.stderr.on('data', (c) => err.push(c));
  const sessions = [];
  try {
    await h.eventually(() => /listening on \d+ \d+\n/.test(Buffer.concat(out)) || 'waiting: ' + Buffer.concat(err), 10000, 'start');
    const ports = /listening on (\d+) (\d+)/.exec(Buffer.concat(out)).slice(1).map(Number);
    const reqs = [];
    for (let i = 0; i < 48; i++) {
      reqs.push({ api: i % 2 ? 'core' : 'compat', tag: 'H' + String(i).padStart(2, '0') + 'x' + h.randomHex(2), span: i % 12 === 5 ? null : h.randomHex(8), size: 1000 + i * 997 });
    }
    for (const port of ports) sessions.push(http2.connect('http://127.0.0.1:' + port));
    const statuses = await h.withTimeout(Promise.all(reqs.map((r) => send(sessions[r.api === 'compat' ? 0 : 1], r.tag, r.span, r.size))), 30000, 'streams');
    assert.deepEqual(statuses, reqs.map(() => 200));
    const want = (r) => (r.api === 'compat'
      ? ['compat start', 'compat body', 'compat end', 'compat finish']
      : ['core start', 'core end', 'core close']).map((w) => w + ' ' + r.tag);
    await h.eventually(() => {
      const all = Buffer.concat(out).toString() + Buffer.concat(err).toString();
      for (const r of reqs) for (const w of want(r)) if (!all.includes(w)) return 'waiting for ' + w;
      return true;
    }, 5000, 'lines');
    const byTag = new Map(reqs.map((r) => [r.tag, r]));
    let marked = 0;
    for (const buf of [Buffer.concat(out), Buffer.concat(err)]) {
      for (const line of h.lines(buf)) {
        const p = h.parseLine(line, nonce);
        const tag = (/H\d{2}x[0-9a-f]{4}/.exec(p.text) || [])[0];
        if (!tag) {
          assert.equal(p.kind, null, 'a line of no request marked: ' + JSON.stringify(line));
          continue;
        }
        const r = byTag.get(tag);
        assert.equal(p.span, r.span, JSON.stringify(line));
        if (p.kind) {
          assert.equal(p.kind, 'r');
          marked++;
        }
      }
    }
    assert.ok(marked >= 140, marked + ' marked lines');
  } finally {
    for (const s of sessions) s.destroy();
    clearTimeout(killer);
    proc.kill('SIGKILL');
  }
});
