'use strict';
// A full pipe: replaylink reads the backend's stdout through a pipe, which
// libuv makes non-blocking. When the reader lags, fs.writeSync(1) writes
// only part of a marked buffer or fails with EAGAIN. The hook keeps
// fs.writeSync's contract (an error before any byte, else a short count)
// and never leaves half a mark or a mark without its line: a caller
// that handles short writes and EAGAIN, as sonic-boom does, gets every line
// out whole and marked once.
const { it } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const LINES = 4000;

const child = `
  const fs = require('fs');
  const http = require('http');
  process.stdout; // a pipe: libuv makes fd 1 non-blocking
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  let eagain = 0;
  let short = 0;
  // writeAll as sonic-boom's sync mode does it: retry EAGAIN, go on after a
  // short write with the rest.
  function writeAll(data) {
    let buf = data;
    for (;;) {
      let n;
      try {
        n = fs.writeSync(1, buf);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
        eagain++;
        Atomics.wait(sleep, 0, 0, 1);
        continue;
      }
      const len = typeof buf === 'string' ? Buffer.byteLength(buf) : buf.length;
      if (n >= len) return;
      short++;
      buf = (typeof buf === 'string' ? Buffer.from(buf) : buf).subarray(n);
    }
  }
  const server = http.createServer((req, res) => {
    // writes of 8 lines (under PIPE_BUF: all or EAGAIN) and of 64 lines
    // (over it: taken in parts), as strings and as Buffers
    for (let i = 0, k = 0; i < ${LINES}; k++) {
      let chunk = '';
      const end = Math.min(${LINES}, i + (k % 2 ? 8 : 64));
      for (; i < end; i++) chunk += 'line ' + i + ' ' + 'x'.repeat(100 + (i % 13)) + '\\n';
      writeAll(k % 3 ? chunk : Buffer.from(chunk));
    }
    fs.writeSync(2, 'wrote all: eagain=' + eagain + ' short=' + short + '\\n');
    res.end('ok');
  });
  server.listen(0, '127.0.0.1', () => fs.writeSync(2, 'listening on ' + server.address().port + '\\n'));
`;

it('a full non-blocking stdout pipe: short writes and EAGAIN keep every line whole, marked once', { timeout: 60000 }, async (t) => {
  const { spawn } = require('node:child_process');
  const nonce = h.randomHex(8);
  const span = h.randomHex(8);
  const proc = spawn(process.execPath, ['-e', child], { cwd: h.APPS, env: h.env({ nonce }), stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 50000);
  try {
    proc.stdout.pause(); // read nothing yet: the pipe fills
    let err = '';
    proc.stderr.on('data', (c) => { err += c; });
    await h.eventually(() => /listening on \d+\n/.test(err) || 'waiting for listening: ' + err, 10000, 'start');
    const port = Number(/listening on (\d+)/.exec(err)[1]);
    const res = h.request(port, { path: '/', headers: { traceparent: h.traceparent(span) }, ms: 40000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.doesNotMatch(err, /wrote all/, 'the writes did not wait for the reader');
    const out = [];
    proc.stdout.on('data', (c) => out.push(c));
    proc.stdout.resume();
    assert.equal((await res).status, 200);
    await h.eventually(() => /wrote all/.test(err) || 'waiting', 10000, 'writes');
    const stats = /eagain=(\d+) short=(\d+)/.exec(err);
    assert.ok(Number(stats[1]) + Number(stats[2]) > 0, 'the pipe never pushed back: ' + err);
    t.diagnostic(stats[0]);
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.on('close', resolve));
    const lines = h.lines(Buffer.concat(out));
    assert.equal(lines.length, LINES);
    lines.forEach((line, j) => {
      const p = h.parseLine(line, nonce);
      assert.equal(p.span, span, 'line ' + j + ' unmarked: ' + JSON.stringify(line.slice(0, 80)));
      assert.equal(p.text, 'line ' + j + ' ' + 'x'.repeat(100 + (j % 13)), 'line ' + j);
    });
  } finally {
    clearTimeout(killer);
    proc.kill('SIGKILL');
  }
});

// flaky.js, preloaded before the hook, makes fs.writeSync and fs.write on
// fd 1 fail with EAGAIN or write only part of what they are given, at
// random (seeded) places: every place a write can be cut, inside marks
// included.
const flaky = `
  const fs = require('fs');
  const realSync = fs.writeSync;
  const realWrite = fs.write;
  let seed = Number(process.env.FLAKY_SEED) || 1;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const view = (data, off, len) => {
    const b = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const o = typeof off === 'number' ? off : 0;
    return b.subarray(o, typeof len === 'number' ? o + len : b.length);
  };
  const eagain = () => Object.assign(new Error('EAGAIN: resource temporarily unavailable, write'), { code: 'EAGAIN', errno: -11, syscall: 'write' });
  fs.writeSync = function (fd, data, off, len) {
    if (fd !== 1) return realSync.apply(fs, arguments);
    const b = view(data, off, len);
    const r = rand(10);
    if (r < 2) throw eagain();
    if (r < 7 && b.length > 1) return realSync(1, b, 0, 1 + rand(b.length - 1));
    return realSync(1, b, 0, b.length);
  };
  fs.write = function (fd, data, ...rest) {
    if (fd !== 1) return realWrite.apply(fs, arguments);
    const cb = rest.pop();
    const b = typeof data === 'string' ? Buffer.from(data) : view(data, rest[0], rest[1]);
    const r = rand(10);
    if (r < 2) return process.nextTick(cb, eagain(), 0, data);
    const n = r < 7 && b.length > 1 ? 1 + rand(b.length - 1) : b.length;
    realWrite(1, b, 0, n, null, (e, w) => cb(e, w, data));
  };
`;

const flakyChild = `
  const fs = require('fs');
  const http = require('http');
  let eagain = 0;
  let short = 0;
  function writeAllSync(data) {
    let buf = data;
    for (;;) {
      let n;
      try { n = fs.writeSync(1, buf); } catch (e) { if (e.code !== 'EAGAIN') throw e; eagain++; continue; }
      const len = typeof buf === 'string' ? Buffer.byteLength(buf) : buf.length;
      if (n >= len) return;
      short++;
      buf = (typeof buf === 'string' ? Buffer.from(buf) : buf).subarray(n);
    }
  }
  function writeAllAsync(data) {
    return new Promise((resolve, reject) => {
      const step = (buf) => fs.write(1, buf, (e, n) => {
        if (e) { if (e.code !== 'EAGAIN') return reject(e); eagain++; return step(buf); }
        const len = typeof buf === 'string' ? Buffer.byteLength(buf) : buf.length;
        if (n >= len) return resolve();
        short++;
        step((typeof buf === 'string' ? Buffer.from(buf) : buf).subarray(n));
      });
      step(data);
    });
  }
  const server = http.createServer(async (req, res) => {
    for (let i = 0, k = 0; i < 2000; k++) {
      let chunk = '';
      const end = Math.min(2000, i + 1 + (k % 5));
      for (; i < end; i++) chunk += 'line ' + i + ' ' + 'y'.repeat(i % 17) + '\\n';
      if (k % 7 === 3) { writeAllSync(chunk.slice(0, 3)); chunk = chunk.slice(3); } // a line begun in one write
      if (k % 2) writeAllSync(k % 4 === 1 ? chunk : Buffer.from(chunk));
      else await writeAllAsync(k % 4 === 0 ? chunk : Buffer.from(chunk));
    }
    fs.writeSync(2, 'wrote all: eagain=' + eagain + ' short=' + short + '\\n');
    res.end('ok');
  });
  server.listen(0, '127.0.0.1', () => fs.writeSync(2, 'listening on ' + server.address().port + '\\n'));
`;

it('writes cut anywhere (a flaky fs.writeSync / fs.write under the hook): every line whole, marked once', { timeout: 60000 }, async (t) => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-flaky-'));
  fs.writeFileSync(path.join(dir, 'flaky.js'), flaky);
  const nonce = h.randomHex(8);
  const span = h.randomHex(8);
  const env = h.env({ nonce, extra: { FLAKY_SEED: String(1 + Math.floor(Math.random() * 1e6)) } });
  env.NODE_OPTIONS = '--require=' + path.join(dir, 'flaky.js') + ' ' + env.NODE_OPTIONS;
  const { spawn } = require('node:child_process');
  const proc = spawn(process.execPath, ['-e', flakyChild], { cwd: h.APPS, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 50000);
  try {
    const out = [];
    let err = '';
    proc.stdout.on('data', (c) => out.push(c));
    proc.stderr.on('data', (c) => { err += c; });
    await h.eventually(() => /listening on \d+\n/.test(err) || 'waiting for listening: ' + err, 10000, 'start');
    const port = Number(/listening on (\d+)/.exec(err)[1]);
    assert.equal((await h.request(port, { path: '/', headers: { traceparent: h.traceparent(span) }, ms: 40000 })).status, 200);
    await h.eventually(() => /wrote all/.test(err) || 'waiting', 10000, 'writes');
    const stats = /eagain=(\d+) short=(\d+)/.exec(err);
    assert.ok(Number(stats[1]) > 100 && Number(stats[2]) > 100, err);
    t.diagnostic(stats[0] + ' seed=' + env.FLAKY_SEED);
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.on('close', resolve));
    const lines = h.lines(Buffer.concat(out));
    assert.equal(lines.length, 2000, 'seed ' + env.FLAKY_SEED);
    lines.forEach((line, j) => {
      const p = h.parseLine(line, nonce);
      assert.equal(p.span, span, 'seed ' + env.FLAKY_SEED + ': line ' + j + ' unmarked: ' + JSON.stringify(line.slice(0, 80)));
      assert.equal(p.text, 'line ' + j + ' ' + 'y'.repeat(j % 17), 'seed ' + env.FLAKY_SEED + ': line ' + j);
    });
  } finally {
    clearTimeout(killer);
    proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
