// Package hooks holds replaylink's runtime hooks for Python and Node
// backends and the protocol they speak: with them, `replaylink run` (and a
// sidecar tailing a shared log file) attributes a backend's lines to the
// request that printed them exactly, under any concurrency, with no change
// to the backend's code.
//
// # How a hook marks a line
//
// The hook runs inside the backend (Python: a sitecustomize module on
// PYTHONPATH; Node: a module preloaded with NODE_OPTIONS=--require). It
// keeps, per thread or async task, the request being served, and marks every
// line written to stdout or stderr while there is one: a mark goes at the
// start of the line, written in the same write as the line's first bytes.
//
//	ESC "_" "rl1;" NONCE ";" KIND SPAN ESC "\"       (42 bytes)
//
// Its parts:
//
//   - ESC _ ... ESC \ is an application program command, which terminals do
//     not display, so a mark that escaped stripping stays invisible.
//   - NONCE is 16 lower-case hex digits, random per run (per install, for a
//     sidecar), given to the hook in REPLAYLINK_HOOK_NONCE (or the file
//     named by REPLAYLINK_HOOK_NONCE_FILE). A hook without a valid nonce does
//     nothing. Text the backend prints on a user's behalf cannot carry the
//     nonce, so it cannot forge a mark.
//   - KIND is 'r' for output of the thread or task serving the request, 'd'
//     (derived) for a thread started, or executor work submitted, while
//     serving it: derived output counts only while the request is in flight
//     (plus the attribution grace), so a thread pool made by one request and
//     reused later never pins later output to it.
//   - SPAN is the request's key, 16 lower-case hex digits: the parent id in
//     the traceparent header the proxy sends upstream, which is the span id
//     replaylink made for that request (a fresh random one per request,
//     never the client's, never shown to clients).
//
// A line begins after a '\n' written to the same stream (or at the stream's
// first byte); a write that continues a line adds no mark. Requests the
// hook cannot key (no valid traceparent: a request that did not come through
// replaylink) leave their lines unmarked.
//
// # What replaylink does with a mark
//
// Strip removes every mark that carries the run's nonce from a line, and
// returns the first one; StripWriter removes them from the child's output
// before it is passed through, so replaylink's stdout and stderr get the
// backend's bytes exactly as they were without the hook. A mark with
// another nonce is text. enrich attributes a marked line to the request its
// span names (enrich.Attributor).
package hooks
