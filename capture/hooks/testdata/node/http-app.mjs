// Plain node:http backend as an ES module, for the replaylink Node hook
// tests (see README.md): the same endpoints and output as http-app.js, with
// `import http from 'node:http'` and awaits on timers/promises.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.env.HOST || '127.0.0.1';

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

const routes = {
  async 'GET /work'(req, res, q) {
    const tag = q.get('tag');
    console.log('start ' + tag);
    await sleep(Number(q.get('ms')) || 0);
    console.error('end ' + tag);
    res.end('ok ' + tag + '\n');
  },
  async 'POST /work'(req, res, q) {
    const tag = q.get('tag');
    const body = await readBody(req);
    console.log('body ' + tag + ' n=' + body.n);
    await sleep(Number(q.get('ms')) || 0);
    res.end('ok ' + tag + '\n');
  },
  async 'GET /fail'(req, res, q) {
    const tag = q.get('tag');
    console.log('fail ' + tag);
    throw new Error('boom ' + tag);
  },
};

const server = http.createServer(async (req, res) => {
  res.on('finish', () => {
    console.log(req.method + ' ' + req.url + ' ' + res.statusCode + ' pid=' + process.pid);
  });
  const url = new URL(req.url, 'http://x');
  const route = routes[req.method + ' ' + url.pathname];
  if (!route) {
    res.statusCode = 404;
    res.end('not found\n');
    return;
  }
  try {
    await route(req, res, url.searchParams);
  } catch (err) {
    console.error(err.stack);
    res.statusCode = 500;
    res.end('error\n');
  }
});

server.listen(port, host, () => console.log('listening on ' + server.address().port));
