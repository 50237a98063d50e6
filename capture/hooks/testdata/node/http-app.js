'use strict';
// Plain node:http backend (CommonJS) for the replaylink Node hook tests
// (see README.md). The body is read with req.on('data'/'end'); the access
// line is printed from res.on('finish'); an error thrown by a handler is
// caught by the dispatcher, which prints its stack to stderr and answers 500.
const http = require('http');

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.env.HOST || '127.0.0.1';

const routes = {
  'GET /work'(req, res, q) {
    const tag = q.get('tag');
    console.log('start ' + tag);
    setTimeout(() => {
      console.error('end ' + tag);
      res.end('ok ' + tag + '\n');
    }, Number(q.get('ms')) || 0);
  },
  'POST /work'(req, res, q) {
    const tag = q.get('tag');
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      console.log('body ' + tag + ' n=' + body.n);
      setTimeout(() => res.end('ok ' + tag + '\n'), Number(q.get('ms')) || 0);
    });
  },
  'GET /fail'(req, res, q) {
    const tag = q.get('tag');
    console.log('fail ' + tag);
    throw new Error('boom ' + tag);
  },
};

function handle(req, res) {
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
    route(req, res, url.searchParams);
  } catch (err) {
    console.error(err.stack);
    res.statusCode = 500;
    res.end('error\n');
  }
}

function listen(onListening) {
  const server = http.createServer(handle);
  server.listen(port, host, () => onListening(server));
  return server;
}

module.exports = { handle, listen };

if (require.main === module) {
  listen((server) => console.log('listening on ' + server.address().port));
}
