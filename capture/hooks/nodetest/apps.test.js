'use strict';
// The test backends under 64 concurrent requests with the hook: every line
// a request printed starts with that request's mark, and nothing else is
// marked.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const h = require('./helpers');

const N = 64;

// plan returns the requests of a run: N traced ones (GET /work, POST /work
// with a JSON body, GET /fail) with their own span and tag, and a few whose
// traceparent is missing or invalid.
function plan() {
  const reqs = [];
  for (let i = 0; i < N; i++) {
    const kind = i % 8 === 3 ? 'fail' : i % 4 === 1 ? 'post' : 'get';
    reqs.push({
      tag: 'T' + String(i).padStart(2, '0') + 'x' + h.randomHex(2),
      span: h.randomHex(8),
      ms: 20 + ((i * 37) % 61),
      kind,
      n: i,
      traced: true,
    });
  }
  const trace = h.randomHex(16);
  const span = h.randomHex(8);
  const invalid = [
    undefined, // no traceparent: a request that did not come through replaylink
    '00-' + trace + '-' + span.toUpperCase().replace(/^[0-9]/, 'A') + '-01', // upper case
    '00-' + trace + '-0000000000000000-01', // zero parent id
    '00-00000000000000000000000000000000-' + span + '-01', // zero trace id
    'ff-' + trace + '-' + span + '-01', // version ff is invalid
    '00-' + trace + '-' + span + '-01-extra', // too long for version 00
  ];
  invalid.forEach((header, j) => {
    reqs.push({ tag: 'U' + String(j).padStart(2, '0') + 'x' + h.randomHex(2), ms: 25, kind: 'get', n: 100 + j, traced: false, header });
  });
  return reqs;
}

function send(port, r, agent) {
  const headers = {};
  if (r.traced) headers.traceparent = h.traceparent(r.span);
  else if (r.header !== undefined) headers.traceparent = r.header;
  switch (r.kind) {
    case 'get':
      return h.request(port, { path: `/work?tag=${r.tag}&ms=${r.ms}`, headers, agent });
    case 'post':
      return h.request(port, { method: 'POST', path: `/work?tag=${r.tag}&ms=${r.ms}`, headers, agent, body: JSON.stringify({ n: r.n, pad: 'x'.repeat(r.n * 50) }) });
    default:
      return h.request(port, { path: `/fail?tag=${r.tag}`, headers, agent });
  }
}

const TAG = /\b[TU]\d{2}x[0-9a-f]{4}\b/g;
const OUTSIDE = [
  /^listening on \d+$/,
  /^primary \d+ forking \d+ workers$/,
  /^worker \d+ ready$/,
  /^worker \d+ exited /,
  /^\{"level":30,.*"msg":"Server listening at http:\/\/127\.0\.0\.1:\d+"\}$/,
];

// check returns what is wrong in out (stdout, stderr of a run of reqs).
function check(out, reqs, nonce, flavor) {
  const problems = [];
  const byTag = new Map(reqs.map((r) => [r.tag, r]));
  const spans = new Set(reqs.filter((r) => r.traced).map((r) => r.span));
  const seen = new Map(reqs.map((r) => [r.tag, []])); // tag -> texts
  const reqIds = new Map(); // fastify reqId -> owner
  const completed = new Map(); // fastify reqId -> count of "request completed"
  const stackLines = new Map(); // tag -> 'at' lines
  const pids = new Set();
  let markedLines = 0;
  const bad = (stream, line, why) => {
    if (problems.length < 20) problems.push(stream + ': ' + why + ': ' + JSON.stringify(line.slice(0, 160)));
    else if (problems.length === 20) problems.push('...');
  };
  for (const [stream, buf] of [['stdout', out.stdout], ['stderr', out.stderr]]) {
    let stack; // { tag, owner } of the "Error: boom" line a stack belongs to
    for (const line of h.lines(buf)) {
      const p = h.parseLine(line, nonce);
      const count = (line.match(h.anyMarkRe(nonce)) || []).length;
      if (count !== (p.kind ? 1 : 0)) bad(stream, line, 'a mark elsewhere than at the line start');
      if (p.kind) {
        markedLines++;
        if (p.kind !== 'r') bad(stream, line, 'kind ' + p.kind);
        if (!spans.has(p.span)) bad(stream, line, 'a span no request had');
      }
      const tags = [...new Set(p.text.match(TAG) || [])];
      const reqId = flavor === 'fastify' ? (/"reqId":"([^"]+)"/.exec(p.text) || [])[1] : undefined;
      let owner; // span the line must carry, null: no mark
      if (tags.length > 1) {
        bad(stream, line, 'tags of several requests in one line');
        continue;
      } else if (tags.length === 1) {
        const r = byTag.get(tags[0]);
        owner = r.traced ? r.span : null;
        seen.get(r.tag).push(p.text);
        if (reqId !== undefined) {
          if (reqIds.has(reqId) && reqIds.get(reqId) !== owner) bad(stream, line, 'reqId of two requests');
          reqIds.set(reqId, owner);
        }
        const pid = /pid=(\d+)$/.exec(p.text);
        if (pid) pids.add(pid[1]);
      } else if (/^\s+at /.test(p.text)) {
        if (stack === undefined) {
          bad(stream, line, 'a stack line after no error line');
          continue;
        }
        owner = stack.owner;
        stackLines.set(stack.tag, (stackLines.get(stack.tag) || 0) + 1);
      } else if (reqId !== undefined && reqIds.has(reqId)) {
        owner = reqIds.get(reqId);
        if (/"msg":"request completed"/.test(p.text)) completed.set(reqId, (completed.get(reqId) || 0) + 1);
      } else {
        owner = null;
        if (!OUTSIDE.some((re) => re.test(p.text))) bad(stream, line, 'a line of no request');
      }
      const boom = /^Error: boom ([TU]\d{2}x[0-9a-f]{4})$/.exec(p.text);
      if (boom) stack = { tag: boom[1], owner };
      else if (!/^\s+at /.test(p.text)) stack = undefined;
      if (owner === null && p.kind) bad(stream, line, 'marked, but written outside any traced request');
      if (owner !== null && p.span !== owner) bad(stream, line, p.kind ? 'marked with another request\'s span' : 'not marked');
    }
  }
  // Completeness: each request printed what it should, so the checks above
  // saw every line of the run.
  for (const r of reqs) {
    const texts = seen.get(r.tag);
    const want = [];
    const path = r.kind === 'fail' ? `/fail?tag=${r.tag}` : `/work?tag=${r.tag}&ms=${r.ms}`;
    const method = r.kind === 'post' ? 'POST' : 'GET';
    const status = r.kind === 'fail' ? 500 : 200;
    if (r.kind === 'get') want.push('start ' + r.tag, 'end ' + r.tag);
    if (r.kind === 'post') want.push('body ' + r.tag + ' n=' + r.n);
    if (r.kind === 'fail') want.push('fail ' + r.tag, 'boom ' + r.tag);
    if (flavor === 'fastify') want.push('"url":"' + path + '"');
    else want.push(`${method} ${path} ${status} pid=`);
    for (const w of want) {
      if (!texts.some((t) => t.includes(w))) problems.push(r.tag + ': no line with ' + JSON.stringify(w));
    }
    if (r.kind === 'fail' && flavor !== 'fastify' && !(stackLines.get(r.tag) >= 2)) problems.push(r.tag + ': no stack printed');
  }
  if (flavor === 'fastify') {
    for (const [reqId] of reqIds) if (completed.get(reqId) !== 1) problems.push(reqId + ': ' + (completed.get(reqId) || 0) + ' "request completed" lines');
    if (reqIds.size !== reqs.length) problems.push(reqIds.size + ' reqIds for ' + reqs.length + ' requests');
  }
  return { problems, markedLines, pids };
}

function complete(output, reqs, flavor) {
  const text = output.stdout.toString() + output.stderr.toString();
  for (const r of reqs) {
    const last = r.kind === 'get' ? 'end ' + r.tag : r.kind === 'post' ? 'body ' + r.tag : 'boom ' + r.tag;
    if (!text.includes(last)) return 'waiting for ' + last;
    const access = flavor === 'fastify' ? null : (r.kind === 'fail' ? `/fail?tag=${r.tag} 500` : `/work?tag=${r.tag}&ms=${r.ms} 200`);
    if (access && !text.includes(access)) return 'waiting for ' + access;
  }
  if (flavor === 'fastify' && (text.match(/"msg":"request completed"/g) || []).length < reqs.length) return 'waiting for request completed lines';
  return true;
}

async function scenario(file, flavor, extra = {}) {
  const nonce = h.randomHex(8);
  const app = await h.startApp(file, h.env({ nonce, extra }));
  let output;
  let reqs;
  let results;
  try {
    reqs = plan();
    // 16 keep-alive sockets for 70 requests: a socket serves several
    // requests in turn, whose contexts must not leak into each other.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    results = await h.withTimeout(Promise.all(reqs.map((r) => send(app.port, r, agent))), 30000, 'requests');
    agent.destroy();
    await h.eventually(() => complete(app.output(), reqs, flavor), 5000, file + ' output');
  } finally {
    output = await app.stop();
  }
  reqs.forEach((r, i) => {
    assert.equal(results[i].status, r.kind === 'fail' ? 500 : 200, r.kind + ' ' + r.tag + ': ' + results[i].body);
  });
  const { problems, markedLines, pids } = check(output, reqs, nonce, flavor);
  assert.deepEqual(problems, [], file + ': wrong lines:\n' + problems.join('\n'));
  assert.ok(markedLines >= N * 3, 'only ' + markedLines + ' marked lines');
  return { output, pids };
}

describe('test backends under 64 concurrent requests', () => {
  it('express: express.json(), morgan, default error handler', { timeout: 60000 }, async () => {
    await scenario('express-app.js', 'express');
  });
  it('fastify: default pino logger (logger: true)', { timeout: 60000 }, async () => {
    await scenario('fastify-app.js', 'fastify');
  });
  it('fastify: pino.destination({ dest: 1, sync: true }) (sonic-boom, fs.writeSync)', { timeout: 60000 }, async () => {
    await scenario('fastify-app.js', 'fastify', { PINO_DEST: 'sync' });
  });
  it('fastify: pino.destination({ dest: 1, sync: false }) (sonic-boom, buffered fs.write)', { timeout: 60000 }, async () => {
    await scenario('fastify-app.js', 'fastify', { PINO_DEST: 'async' });
  });
  it('node:http, CommonJS', { timeout: 60000 }, async () => {
    await scenario('http-app.js', 'http');
  });
  it('node:http, ES module', { timeout: 60000 }, async () => {
    await scenario('http-app.mjs', 'http');
  });
  it('node:http in cluster mode, 2 workers', { timeout: 60000 }, async () => {
    const { pids } = await scenario('cluster-app.js', 'http');
    assert.equal(pids.size, 2, 'requests served by workers ' + [...pids].join(', '));
  });
});

describe('no nonce, no hook', () => {
  for (const [name, nonce] of [['no nonce', undefined], ['upper-case nonce', 'ABCDEF0123456789'], ['short nonce', 'abcdef012345678']]) {
    it('express with the hook and ' + name + ' marks nothing', { timeout: 60000 }, async () => {
      const app = await h.startApp('express-app.js', h.env({ nonce }));
      let output;
      const reqs = plan().slice(0, 24);
      try {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
        await h.withTimeout(Promise.all(reqs.map((r) => send(app.port, r, agent))), 30000, 'requests');
        agent.destroy();
        await h.eventually(() => complete(app.output(), reqs, 'express'), 5000, 'output');
      } finally {
        output = await app.stop();
      }
      for (const b of [output.stdout, output.stderr]) {
        assert.equal(b.indexOf('\x1b_'), -1, 'an escape sequence in ' + JSON.stringify(b.toString().slice(0, 200)));
      }
      assert.match(output.stdout.toString(), /^listening on \d+\n/);
    });
  }
});
