'use strict';
// Deterministic output for the replaylink Node hook tests (see README.md):
// the same bytes on every run, written through every path the hook marks,
// inside and outside requests. The program serves three requests to itself
// one after the other: R1 (traceparent parent-id SPAN1), R2 (SPAN2), and
// one without a traceparent. Every line starts with what should mark it:
//   R1: / R2:  written while serving R1 / R2: kind 'r', that request's span
//   W:         written by a worker_thread started while serving R1: 'd' SPAN1
//   O:         written outside any traced request: no mark
// (after an optional foreign mark); a line without one (stack lines, an
// empty line) belongs with the line before it. A line begun in one context
// and finished in another is marked by where it began.
const fs = require('fs');
const http = require('http');
const { once } = require('events');
const { Worker } = require('worker_threads');

const SPAN1 = process.env.SPAN1 || '1111111111111111';
const SPAN2 = process.env.SPAN2 || '2222222222222222';
const TRACE = '0af7651916cd43dd8448eb211c80319c';
// A mark as another run (another nonce) would write it: text to this run.
const FOREIGN = '\x1b_rl1;ffffffffffffffff;raaaaaaaaaaaaaaaa\x1b\\';

const out = process.stdout;
const err = process.stderr;
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
const fsWrite = (...args) => new Promise((resolve, reject) => {
  fs.write(...args, (e, n) => (e ? reject(e) : resolve(n)));
});
const fsWritev = (...args) => new Promise((resolve, reject) => {
  fs.writev(...args, (e, n) => (e ? reject(e) : resolve(n)));
});

async function serveR1() {
  console.log('R1:console.log');
  out.write('R1:multi 1\nR1:multi 2\r\nR1:multi 3\n');
  out.write('R1:split ');
  out.write('across ');
  out.write('writes\n');
  out.write('R1:' + 'L'.repeat(10000) + '\n'); // a line > 4 KiB in one write
  out.write('R1:long in parts ' + 'l'.repeat(3000));
  out.write('m'.repeat(3000));
  out.write('n'.repeat(3000) + '\nR1:after long\n');
  out.write('R1:\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[0m \x1b]0;title\x07\n');
  out.write(Buffer.from('R1:buffer 1\nR1:buffer 2\n'));
  out.write(new Uint8Array(Buffer.from('R1:uint8array\n')));
  out.write('R1:utf8 héllo wörld ✓ 日本語 🎉\n');
  out.write(Buffer.from('R1:hex write\nR1:hex 2\n').toString('hex'), 'hex');
  out.write(Buffer.from('R1:base64 write\n').toString('base64'), 'base64');
  out.write('R1:latin1 \xe9\n', 'latin1');
  out.write('R1:with callback\n', () => {});
  out.write(FOREIGN + 'R1:a foreign mark at the line start\n');
  out.write('R1:a foreign mark inside ' + FOREIGN + 'the line\n');
  console.log('');
  err.write('R1:stderr 1\nR1:stderr 2\n');
  console.error('R1:console.error\nR1:console.error line 2');
  out.write('R1:stdout left mid-line, ');
  err.write('R1:stderr meanwhile begins its own line\n');
  fs.writeSync(1, 'continued by fs.writeSync\n');
  fs.writeSync(1, 'R1:fs.writeSync string\n');
  const slice = 'R1:fs.writeSync buffer slice\n';
  fs.writeSync(1, Buffer.from('xx' + slice + 'yy'), 2, Buffer.byteLength(slice));
  fs.writeSync(1, Buffer.from('zzR1:fs.writeSync options\n'), { offset: 2 });
  fs.writeSync(1, 'R1:fs.writeSync latin1 \xe9\n', null, 'latin1');
  fs.writeSync(2, 'R1:fs.writeSync stderr\n');
  fs.writevSync(1, [Buffer.from('R1:writevSync '), Buffer.from('a\nR1:writevSync b\n')]);
  await fsWrite(1, 'R1:fs.write string\nR1:fs.write string 2\n');
  await fsWrite(1, Buffer.from('R1:fs.write buffer '));
  await fsWrite(1, Buffer.from('continued\n'));
  await fsWritev(1, [Buffer.from('R1:fs.writev a\n'), Buffer.from('R1:fs.writev b\n')]);
  await tick();
  console.error(new Error('R1:boom'));

  // pino.destination: sonic-boom on fd 1, buffered (the three lines go out
  // in one fs.write on flush) and synchronous.
  const pino = require('pino');
  const async = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  async.write('R1:sonic-boom async 1\n');
  async.write('R1:sonic-boom async 2\nR1:sonic-boom async 3\n');
  await new Promise((resolve) => async.flush(resolve));
  const sync = pino.destination({ dest: 1, sync: true });
  sync.write('R1:sonic-boom sync\n');

  // A worker_thread started while serving R1: its lines are derived ('d').
  const w = new Worker(
    "console.log('W:worker console.log'); process.stdout.write('W:worker 1\\nW:worker 2\\n'); console.error('W:worker stderr')",
    { eval: true },
  );
  await once(w, 'exit');

  out.write('R1:left mid-line when the response ends, ');
}

async function serveR2(req) {
  out.write('continued in R2 (begun outside)\n');
  console.log('R2:console.log');
  // the hook never wraps a listener: identity, off() and once() as usual
  const f = () => {};
  req.on('data', f);
  const same = req.listeners('data').includes(f) && req.rawListeners('data').includes(f);
  req.off('data', f);
  req.once('end', f);
  req.removeListener('end', f);
  console.log('R2:listeners kept: ' + same + ', removed: ' + (req.listenerCount('data') + req.listenerCount('end') === 0));
  err.write(Buffer.from('R2:stderr buffer\n'));
  await tick();
  out.write('R2:after a timer\n');
  fs.writeSync(2, 'R2:fs.writeSync stderr\n');
}

async function serveUntraced() {
  console.log('O:request without traceparent');
  console.error('O:its stderr');
  fs.writeSync(1, 'O:its fs.writeSync\n');
}

const server = http.createServer((req, res) => {
  const serve = req.url === '/r1' ? serveR1 : req.url === '/r2' ? serveR2 : serveUntraced;
  serve(req).then(() => res.end('ok'), (e) => {
    process.exitCode = 3;
    res.statusCode = 500;
    res.end(String(e && e.stack));
  });
});

function get(path, span) {
  const headers = span ? { traceparent: '00-' + TRACE + '-' + span + '-01' } : {};
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(path + ': ' + res.statusCode))));
    }).on('error', reject);
  });
}

async function main() {
  out.write('O:first line\n');
  fs.writeSync(1, 'O:fs.writeSync outside\n');
  out.write(FOREIGN + 'O:a foreign mark outside\n');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  await get('/r1', SPAN1);
  out.write('continued outside\n');
  out.write('O:outside between requests\n');
  out.write('O:left mid-line before R2, ');
  await get('/r2', SPAN2);
  await get('/untraced');
  const w = new Worker("console.log('O:worker started outside any request')", { eval: true });
  await once(w, 'exit');
  console.error('O:stderr outside');
  server.close();
  out.write('O:last stdout line, no newline');
  err.write('O:last stderr line, no newline');
}

main().catch((e) => {
  err.write('\nO:FAILED ' + (e && e.stack) + '\n');
  process.exitCode = 2;
});
