'use strict';
// Byte-exactness: testdata/node/exact-output.js writes the same bytes on
// every run, through every path the hook marks. With the hook and a nonce,
// stripping the marks gives exactly the bytes it writes without the hook,
// and each line carries the mark its first bytes were written under.
// Without a (valid) nonce the hook changes nothing at all.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./helpers');

const SCRIPT = 'exact-output.js';

function showDiff(a, b) {
  const la = a.toString('latin1').split('\n');
  const lb = b.toString('latin1').split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return 'line ' + (i + 1) + ':\n  want ' + JSON.stringify(la[i]) + '\n  got  ' + JSON.stringify(lb[i]);
  }
  return '(same lines)';
}

function sameBytes(got, want, what) {
  assert.ok(Buffer.compare(got, want) === 0, what + ' differs at ' + showDiff(want, got));
}

describe('exact output (' + SCRIPT + ')', () => {
  const nonce = h.randomHex(8);
  const span1 = h.randomHex(8);
  const span2 = h.randomHex(8);
  const spans = { SPAN1: span1, SPAN2: span2 };
  let plain; // without the hook
  let hooked; // with the hook and nonce

  before(async () => {
    [plain, hooked] = await Promise.all([
      h.run([SCRIPT], h.env({ hook: false, extra: spans })),
      h.run([SCRIPT], h.env({ nonce, extra: spans })),
    ]);
    for (const r of [plain, hooked]) assert.equal(r.code, 0, 'exit ' + r.code + ' ' + r.signal + ': ' + r.stderr);
  });

  it('stripping the marks gives the bytes the program wrote', () => {
    assert.ok(hooked.stdout.length > plain.stdout.length + 40 * 42, 'hardly any mark on stdout');
    assert.ok(hooked.stderr.length > plain.stderr.length + 10 * 42, 'hardly any mark on stderr');
    sameBytes(h.strip(hooked.stdout, nonce), plain.stdout, 'stripped stdout');
    sameBytes(h.strip(hooked.stderr, nonce), plain.stderr, 'stripped stderr');
    assert.ok(plain.stdout.toString().endsWith('O:last stdout line, no newline'));
    assert.ok(plain.stderr.toString().endsWith('O:last stderr line, no newline'));
  });

  it('each line has the mark of where it began, only at its start', () => {
    const want = { R1: 'r' + span1, R2: 'r' + span2, W: 'd' + span1, O: '' };
    const FOREIGN = '\x1b_rl1;ffffffffffffffff;raaaaaaaaaaaaaaaa\x1b\\';
    const counts = { R1: 0, R2: 0, W: 0, O: 0 };
    for (const [stream, buf] of [['stdout', hooked.stdout], ['stderr', hooked.stderr]]) {
      let prev = null;
      for (const line of h.lines(buf)) {
        const p = h.parseLine(line, nonce);
        const got = p.kind ? p.kind + p.span : '';
        let text = p.text;
        if (text.startsWith(FOREIGN)) text = text.slice(FOREIGN.length);
        const tok = /^(R1|R2|W|O):/.exec(text);
        const who = tok ? tok[1] : prev;
        assert.ok(who !== null, stream + ': a first line without a token: ' + JSON.stringify(line));
        counts[who]++;
        assert.equal(got, want[who], stream + ': ' + JSON.stringify(line.slice(0, 120)));
        assert.equal((line.match(h.anyMarkRe(nonce)) || []).length, p.kind ? 1 : 0, stream + ': a mark inside ' + JSON.stringify(line.slice(0, 120)));
        prev = who;
      }
    }
    assert.ok(counts.R1 >= 40 && counts.R2 >= 4 && counts.W >= 4 && counts.O >= 10, JSON.stringify(counts));
  });

  it('a mark with another nonce is text, left as written', () => {
    const foreign = '\x1b_rl1;ffffffffffffffff;raaaaaaaaaaaaaaaa\x1b\\';
    assert.notEqual(nonce, 'ffffffffffffffff');
    const out = hooked.stdout.toString();
    assert.ok(out.includes('\n' + foreign + 'O:a foreign mark outside\n'), 'outside a request: unchanged');
    assert.ok(out.includes('\x1b_rl1;' + nonce + ';r' + span1 + '\x1b\\' + foreign + 'R1:a foreign mark at the line start\n'), 'in a request: our mark, then the line as written');
    assert.ok(out.includes('R1:a foreign mark inside ' + foreign + 'the line\n'));
  });

  it('the nonce may come from REPLAYLINK_HOOK_NONCE_FILE: the same bytes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-nonce-'));
    try {
      const file = path.join(dir, 'nonce');
      fs.writeFileSync(file, nonce + '\n');
      const r = await h.run([SCRIPT], h.env({ extra: { ...spans, REPLAYLINK_HOOK_NONCE_FILE: file } }));
      assert.equal(r.code, 0, String(r.stderr));
      sameBytes(r.stdout, hooked.stdout, 'stdout');
      sameBytes(r.stderr, hooked.stderr, 'stderr');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stdout and stderr redirected to files (SyncWriteStream, fs.writeSync inside): the same bytes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-files-'));
    try {
      const outFd = fs.openSync(path.join(dir, 'out'), 'w');
      const errFd = fs.openSync(path.join(dir, 'err'), 'w');
      const { spawn } = require('node:child_process');
      const code = await new Promise((resolve, reject) => {
        const p = spawn(process.execPath, [SCRIPT], { cwd: h.APPS, env: h.env({ nonce, extra: spans }), stdio: ['ignore', outFd, errFd] });
        const t = setTimeout(() => p.kill('SIGKILL'), 20000);
        p.on('error', reject);
        p.on('close', (c) => { clearTimeout(t); resolve(c); });
      });
      fs.closeSync(outFd);
      fs.closeSync(errFd);
      assert.equal(code, 0);
      sameBytes(fs.readFileSync(path.join(dir, 'out')), hooked.stdout, 'stdout file');
      sameBytes(fs.readFileSync(path.join(dir, 'err')), hooked.stderr, 'stderr file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [name, extra] of [
    ['no nonce', {}],
    ['an upper-case nonce', { REPLAYLINK_HOOK_NONCE: nonce.toUpperCase().replace(/^[0-9]/, 'A') }],
    ['a 17-digit nonce', { REPLAYLINK_HOOK_NONCE: nonce + '0' }],
    ['a missing nonce file', { REPLAYLINK_HOOK_NONCE_FILE: path.join(os.tmpdir(), 'rl-no-such-dir', 'nonce') }],
  ]) {
    it('with ' + name + ' the hook leaves the output unchanged', async () => {
      const r = await h.run([SCRIPT], h.env({ extra: { ...spans, ...extra } }));
      assert.equal(r.code, 0, String(r.stderr));
      sameBytes(r.stdout, plain.stdout, 'stdout');
      sameBytes(r.stderr, plain.stderr, 'stderr');
    });
  }
});

describe('an inert hook patches nothing', () => {
  // pre.js, required before the hook, keeps what the hook may replace;
  // the program then compares.
  const pre = `
    const d = Object.getOwnPropertyDescriptor(process, 'stdout');
    globalThis.__orig = {
      fs: { ...require('fs') },
      stdoutGet: d.get,
      stderrGet: Object.getOwnPropertyDescriptor(process, 'stderr').get,
      serverEmit: require('net').Server.prototype.emit,
      ownServerEmit: Object.prototype.hasOwnProperty.call(require('net').Server.prototype, 'emit'),
      Worker: require('worker_threads').Worker,
      load: require('module')._load,
    };
  `;
  const probe = `
    const o = globalThis.__orig;
    const fs = require('fs');
    const changed = [];
    for (const k of Object.keys(o.fs)) if (fs[k] !== o.fs[k]) changed.push('fs.' + k);
    if (Object.getOwnPropertyDescriptor(process, 'stdout').get !== o.stdoutGet) changed.push('process.stdout');
    if (Object.getOwnPropertyDescriptor(process, 'stderr').get !== o.stderrGet) changed.push('process.stderr');
    if (Object.prototype.hasOwnProperty.call(process.stdout, 'write')) changed.push('process.stdout.write');
    if (Object.prototype.hasOwnProperty.call(process.stderr, 'write')) changed.push('process.stderr.write');
    if (require('net').Server.prototype.emit !== o.serverEmit) changed.push('net.Server.prototype.emit');
    if (require('worker_threads').Worker !== o.Worker) changed.push('Worker');
    if (require('module')._load !== o.load) changed.push('Module._load');
    const http = require('http');
    for (const C of [http.IncomingMessage, http.ServerResponse]) {
      if (Object.getOwnPropertySymbols(C.prototype).length) changed.push(C.name);
    }
    fs.writeSync(2, JSON.stringify({ state: globalThis[Symbol.for('replaylink.hook.v1')] || 'absent', changed }));
  `;
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-probe-'));
    fs.writeFileSync(path.join(dir, 'pre.js'), pre);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const envWithPre = (nonce) => {
    const e = h.env({ nonce });
    e.NODE_OPTIONS = '--require=' + path.join(dir, 'pre.js') + ' ' + e.NODE_OPTIONS;
    return e;
  };

  it('without a nonce: everything is the original', async () => {
    const r = await h.run(['-e', probe], envWithPre(undefined));
    assert.deepEqual(JSON.parse(r.stderr), { state: 'inert', changed: [] });
    assert.equal(r.stdout.length, 0);
  });
  it('with a nonce: the probe sees the patches', async () => {
    const r = await h.run(['-e', probe], envWithPre(h.randomHex(8)));
    const got = JSON.parse(r.stderr);
    assert.equal(got.state, 'active');
    for (const k of ['fs.write', 'fs.writeSync', 'fs.writev', 'fs.writevSync', 'process.stdout', 'process.stderr',
      'process.stdout.write', 'process.stderr.write', 'net.Server.prototype.emit', 'Worker', 'Module._load']) {
      assert.ok(got.changed.includes(k), k + ' not patched: ' + got.changed.join(', '));
    }
  });
});
