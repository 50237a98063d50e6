'use strict';
// Express backend for the replaylink Node hook tests (see README.md).
// express.json() parses POST bodies; morgan prints one access line per
// response (on 'finish'); Express's default error handler prints the stack
// of an error thrown in a handler to stderr.
const express = require('express');
const morgan = require('morgan');

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.env.HOST || '127.0.0.1';

const app = express();
app.use(morgan(':method :url :status pid=' + process.pid));
app.use(express.json());

app.get('/work', (req, res) => {
  const tag = String(req.query.tag);
  console.log('start ' + tag);
  setTimeout(() => {
    console.error('end ' + tag);
    res.send('ok ' + tag + '\n');
  }, Number(req.query.ms) || 0);
});

app.post('/work', (req, res) => {
  const tag = String(req.query.tag);
  console.log('body ' + tag + ' n=' + (req.body && req.body.n));
  setTimeout(() => res.send('ok ' + tag + '\n'), Number(req.query.ms) || 0);
});

app.get('/fail', (req) => {
  const tag = String(req.query.tag);
  console.log('fail ' + tag);
  throw new Error('boom ' + tag);
});

const server = app.listen(port, host, () => {
  console.log('listening on ' + server.address().port);
});
