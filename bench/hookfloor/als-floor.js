'use strict';
// make bench, runtime hooks: the floor of any per-request context in Node.
// Preloaded instead of replaylink's hook, it does only what every such
// hook must (dd-trace and OpenTelemetry's http instrumentation do the
// same): run each 'request' listener inside AsyncLocalStorage.run, so that
// the request's context follows its callbacks. It marks nothing. Its cost
// against no preload is what Node's AsyncLocalStorage itself costs the
// backend (on Node before 22, async_hooks; from 24, AsyncContextFrame).
const { AsyncLocalStorage } = require('async_hooks');
const als = new AsyncLocalStorage();
const proto = require('net').Server.prototype;
const emit = proto.emit;
proto.emit = function (event, req) {
  if (event === 'request' && req && req.headers && req.headers.traceparent) {
    return als.run({ span: req.headers.traceparent }, Reflect.apply, emit, this, arguments);
  }
  return Reflect.apply(emit, this, arguments);
};
