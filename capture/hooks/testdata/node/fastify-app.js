'use strict';
// Fastify backend for the replaylink Node hook tests (see README.md), with
// Fastify's default pino logger (logger: true): one JSON line per incoming
// request ("incoming request", with the url), per response ("request
// completed", with the reqId only) and per error thrown in a handler.
// PINO_DEST=sync|async logs to pino.destination({ dest: 1, sync }) instead:
// sonic-boom writing to fd 1 with fs.writeSync / fs.write.
const Fastify = require('fastify');

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.env.HOST || '127.0.0.1';

let logger = true;
if (process.env.PINO_DEST === 'sync' || process.env.PINO_DEST === 'async') {
  const pino = require('pino');
  logger = { stream: pino.destination({ dest: 1, sync: process.env.PINO_DEST === 'sync' }) };
}
const app = Fastify({ logger });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

app.get('/work', async (req) => {
  const tag = String(req.query.tag);
  console.log('start ' + tag);
  await sleep(Number(req.query.ms) || 0);
  console.error('end ' + tag);
  return 'ok ' + tag + '\n';
});

app.post('/work', async (req) => {
  const tag = String(req.query.tag);
  console.log('body ' + tag + ' n=' + (req.body && req.body.n));
  await sleep(Number(req.query.ms) || 0);
  return 'ok ' + tag + '\n';
});

app.get('/fail', async (req) => {
  const tag = String(req.query.tag);
  console.log('fail ' + tag);
  throw new Error('boom ' + tag);
});

app.listen({ port, host }).then(() => {
  console.log('listening on ' + app.server.address().port);
}, (err) => {
  console.error(err);
  process.exit(1);
});
