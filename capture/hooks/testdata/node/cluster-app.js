'use strict';
// Cluster-mode node:http backend for the replaylink Node hook tests (see
// README.md): the primary forks 2 workers (NODE_OPTIONS and the hook's
// environment are inherited) that serve http-app.js's endpoints on one
// port; each access line names the worker's pid.
const cluster = require('cluster');

const port = Number(process.argv[2] || process.env.PORT || 0);
const WORKERS = 2;

if (cluster.isPrimary) {
  console.log('primary ' + process.pid + ' forking ' + WORKERS + ' workers');
  let listening = 0;
  cluster.on('listening', (worker, address) => {
    listening++;
    if (listening === WORKERS) console.log('listening on ' + address.port);
  });
  cluster.on('exit', (worker, code, signal) => {
    console.error('worker ' + worker.process.pid + ' exited ' + (signal || code));
  });
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  process.argv[2] = String(port);
  const { listen } = require('./http-app.js');
  listen(() => console.log('worker ' + process.pid + ' ready'));
}
