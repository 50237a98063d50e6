// A minimal page with OpenReplay's tracker that calls a backend behind
// replaylink, in one of two ways (?mode=):
//
//   token  (default) zero code: the tracker itself adds its session token
//          header (X-OpenReplay-SessionToken) to the page's fetch and XHR
//          calls, thanks to network: { sessionTokenHeader: true };
//   header the manual way of OpenReplay's Elasticsearch guide: wait for
//          tracker.start() and send openReplaySession.id yourself.
//
// Everything else comes from the query string too, so the same bundle works
// in docker compose, on a laptop and in the end-to-end test:
//   ingest      OpenReplay's ingest point  (default http://<this host>:9000/ingest)
//   api         the backend, through replaylink  (default http://<this host>:8080)
//   projectKey  OpenReplay project key  (default replaylink-demo)
//   admin       replaylink's admin listener, for the session page link
//               (default http://<this host>:9090)
//   auto=1      call both endpoints as soon as the tracker has started, then
//               send the recording at once
import { tracker } from '@openreplay/tracker';

const params = new URLSearchParams(window.location.search);
const here = `${window.location.protocol}//${window.location.hostname}`;
const config = {
  mode: params.get('mode') === 'header' ? 'header' : 'token',
  ingestPoint: params.get('ingest') || `${here}:9000/ingest`,
  api: (params.get('api') || `${here}:8080`).replace(/\/+$/, ''),
  projectKey: params.get('projectKey') || 'replaylink-demo',
  admin: (params.get('admin') || `${here}:9090`).replace(/\/+$/, ''),
  auto: params.get('auto') === '1',
};

// The page's state, for people (the DOM) and for the end-to-end test
// (window.demo and data-state on <body>).
const demo = { config, started: false, sessionID: null, startError: null, calls: [] };
window.demo = demo;

function show() {
  const el = (id) => document.getElementById(id);
  el('mode').textContent = config.mode === 'token'
    ? 'zero code: the tracker adds X-OpenReplay-SessionToken'
    : 'manual: the page adds openReplaySession.id';
  el('api').textContent = config.api;
  el('session').textContent = demo.sessionID || (demo.startError ? `not started: ${demo.startError}` : 'starting…');
  if (demo.sessionID) {
    const link = el('session-page');
    link.href = `${config.admin}/sessions/${encodeURIComponent(demo.sessionID)}`;
    link.hidden = false;
  }
  el('calls').textContent = demo.calls
    .map((c) => `${c.path} -> ${c.status}${c.error ? ` (${c.error})` : ''}`)
    .join('\n');
}

const isLocal = ['localhost', '127.0.0.1', '[::1]'].includes(window.location.hostname);
tracker.configure({
  projectKey: config.projectKey,
  ingestPoint: config.ingestPoint,
  // The tracker refuses plain http unless told otherwise; allow it for a
  // page on this machine only (a real site is served over https).
  __DISABLE_SECURE_MODE: isLocal && window.location.protocol === 'http:',
  network: config.mode === 'token'
    ? {
        // Zero code: the tracker adds X-OpenReplay-SessionToken to fetch and
        // XHR calls once the session has started (requests to the ingest
        // point excepted). Without tokenUrlMatcher it goes to every origin,
        // third parties included: send it to your API only.
        sessionTokenHeader: true,
        tokenUrlMatcher: (url) => url.startsWith(config.api),
      }
    : {},
});

async function call(path) {
  const headers = { 'Content-Type': 'application/json' };
  if (config.mode === 'header') {
    // The guide's way: after tracker.start() has resolved.
    const sessionId = tracker.getSessionID();
    if (sessionId) {
      headers['openReplaySession.id'] = sessionId;
    }
  }
  const entry = { path, status: 0, error: null, requestID: null, at: 0 };
  try {
    const response = await fetch(config.api + path, { method: 'GET', headers });
    entry.status = response.status;
    entry.requestID = response.headers.get('X-Request-ID');
    entry.at = Date.now(); // when the answer came, for the end-to-end test's clock
  } catch (err) {
    entry.error = String(err);
  }
  demo.calls.push(entry);
  show();
  return entry;
}
window.callApi = call;

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('ok').addEventListener('click', () => call('/api/endpoint'));
  document.getElementById('fail').addEventListener('click', () => call('/api/cart'));
  show();
});

tracker.start().then(async (result) => {
  if (result && result.success === false) {
    demo.startError = result.reason || 'unknown reason';
  } else {
    demo.started = true;
    demo.sessionID = tracker.getSessionID();
  }
  show();
  if (config.auto && demo.started) {
    await call('/api/endpoint');
    await call('/api/cart');
    // Send the recording now rather than at the tracker's next 30 s tick
    // (after its 30 ms ticker has handed the last messages to its worker).
    await new Promise((resolve) => setTimeout(resolve, 200));
    tracker.forceFlushBatch();
  }
  document.body.dataset.state = 'done';
});
