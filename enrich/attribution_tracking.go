package enrich

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replaylink/replaylink/proxy"
)

// Tracking: what the Attributor knows of the proxy's requests. Its state is
// shared by the proxy's request goroutines (RequestStarted,
// RequestFinished) and the enricher's worker (attribute, in
// attribution.go), under one mutex that is held for table operations only:
// no I/O, no allocation once the tables are at their size, nothing that
// waits.

const (
	// windowRetention is how long finished requests stay known for window
	// decisions, and windowCapacity how many at most.
	windowRetention = 30 * time.Second
	windowCapacity  = 1 << 16
	// idRetention is how long after its request ends a request id or trace
	// id still attributes lines that have no live time (files, pushes),
	// and idCapacity how many ids are kept.
	idRetention = 2 * time.Minute
	idCapacity  = 1 << 17
	// finishSkew is how far out of end-time order RequestFinished calls may
	// come (they run on different goroutines); the window scan reaches that
	// much further back.
	finishSkew = time.Second
)

// Attributor tracks the proxy's requests and attributes backend records to
// sessions by the rules below (deciding: attribution.go; tracking: this
// file). It implements proxy.Observer; Enricher uses it as its own.
//
// Attribution is
// precision first: a record is never attached to a session unless the
// evidence names exactly one. And it must hold when attacked from outside:
// backends log what users type, so any text in a record may be a user's,
// written to steer the record into someone else's session. The rules below
// are invariants, each with its tests (docs/document-format.md lists them):
//
//  1. Candidates. A record read live from a pipe (Stream.LiveTime) can only
//     have been printed by a request that had started before its first
//     line was read and had not ended more than the grace before it (a
//     CORS preflight that had ended does not count: browsers send it
//     right before the request, without the session; the backend runs no
//     app code for it). These are its candidates; it is attributed to one
//     of them or to none, whatever its text says.
//
//  2. Names narrow, never add. A request name (method, path, status) is
//     read only in a server's or framework's own form, opening the message
//     and ending the line (requestline.go). It narrows the candidates to
//     those it matches; it never adds a request, and a name that matches
//     none of them leaves the record without a session. An access line is
//     printed after its response and may be read up to accessLineDelay
//     after the request's end: a request it names that ended that recently,
//     too long ago to be a candidate, may have printed it, so the name then
//     picks none.
//
//  3. Ids. A request id or trace id attributes a record exactly when it is
//     one replaylink made (the X-Request-ID it generated, a trace it
//     started) wherever the record prints it; one the client chose counts
//     only in a structured field (request_id, trace_id), since the client
//     may have planted it in another user's input. A live record matches
//     an id only inside its request's window (invariant 1); a file or
//     pushed record, whose read time is not its print time, until
//     idRetention after the request's end. Ids naming two sessions name
//     none.
//
//  4. Markers. The record's own openReplaySession.id=N marker (ownmarker.go)
//     is what a backend following OpenReplay's guide prints from the
//     request's header. It counts only when the header is a trusted
//     session source (else the proxy strips the header, and a marker is
//     text: Options.IgnoreMarkers), only when ids do not contradict it,
//     and for a live record only when N is the session of one of its
//     candidates: then it picks N among them, ahead of names. A marker
//     naming no candidate's session, or printed with no candidate at all,
//     is text the backend logged and counts for nothing.
//
//  5. One session or none. After narrowing, the record is given a session
//     only when every request left has that one session (a request without
//     a session may have printed it too); otherwise none, with the
//     sessions kept as candidates, never in the message.
//
//  6. Hooks. A record a runtime hook marked (package capture/hooks: the
//     marker carries a per-run nonce no user input can, and the proxy's own
//     span id of the request) belongs to that request: exact, whatever its
//     text says and whatever else was in flight. Output of a thread or task
//     derived from the request counts only while the request is a
//     candidate (invariant 1). A mark naming no request the proxy knows
//     gives none.
//
// A user who controls a whole line can still pick among requests in flight
// when an unmarked line was printed, by naming one of them; the hooks close
// that for the backends they run in.
//
// Window decisions depend only on timestamps (Line.Time, RequestStart.Start,
// AccessEvent.Start+Duration), not on when the worker gets to a record, so a
// worker that lags gives the same answers. For that the Attributor keeps
// finished requests for windowRetention; a record older than what it still
// knows (the horizon) gets none rather than a guess.
//
// An Attributor made for pushed lines only (Options.PushedLinesOnly) keeps no
// books until the first line, so that a replaylink that never gets one costs
// the proxy nothing (see noteLine).
type Attributor struct {
	grace time.Duration
	seed  maphash.Seed // of path keys and id hashes
	// ignoreMarkers: the backend is never given a session a client chose
	// (the header source is off, and the proxy strips the header), so a
	// marker in its output is text, never evidence (see Options.IgnoreMarkers).
	ignoreMarkers bool
	// hooks: lines may carry runtime hooks' marks, which name requests by
	// their span id: those are kept in ids too.
	hooks bool

	// active is false until the first line when the lines can only be
	// pushed (see noteLine); requests are not tracked meanwhile.
	active atomic.Bool

	mu       sync.Mutex
	inflight map[uint64]flight
	done     ring[finished] // finished requests in RequestFinished order
	// lastByPath chains the requests in done by path, for the lines that
	// name one: the absolute position + 1 of the last one with each path
	// key (0: the path is not known), each pointing to the one before
	// (finished.prevSame).
	lastByPath map[uint64]uint64
	horizon    time.Time // window decisions for earlier times lack forgotten requests
	latest     time.Time // latest request time seen, the clock of expiry
	// windowless: the Attributor was activated by a line, so it never knew
	// the requests in flight then, nor when the last of them ends; window
	// decisions could miss one, and are not made. (Pushed lines, the only
	// ones it was made for, are never judged by time anyway.)
	windowless bool
	ids        idTable
}

var _ proxy.Observer = (*Attributor)(nil)

type flight struct {
	session   uint64
	start     time.Time
	reqID     idHandle
	trace     idHandle
	span      idHandle
	path      uint64 // pathKey; 0: not known
	method    httpMethod
	preflight bool
}

// finished is a request for window decisions; in-flight requests are
// considered in the same shape, with a zero end.
type finished struct {
	seq, session uint64
	start, end   time.Time
	path         uint64
	method       httpMethod
	preflight    bool
	answered     bool   // the status is the upstream's (the proxy made no response of its own)
	status       uint16 // 0 while in flight
	prevSame     uint64 // absolute position in done + 1 of the previous request with this path; 0: none
}

// NewAttributor returns an Attributor that counts a request as in flight
// from its start to grace after its end, tracking requests from the start,
// and that weighs the markers backend lines carry (see attribution.go).
func NewAttributor(grace time.Duration) *Attributor {
	a := &Attributor{
		grace:      grace,
		seed:       maphash.MakeSeed(),
		inflight:   make(map[uint64]flight),
		done:       newRing[finished](windowCapacity),
		lastByPath: make(map[uint64]uint64),
		ids:        newIDTable(),
	}
	a.active.Store(true)
	return a
}

// newAttributor returns the Attributor of an Enricher with o: with
// o.PushedLinesOnly, one that waits for the first line (see noteLine).
func newAttributor(o Options) *Attributor {
	a := NewAttributor(o.AttributionGrace)
	a.ignoreMarkers, a.hooks = o.IgnoreMarkers, o.Hooks
	if o.PushedLinesOnly {
		a.active.Store(false)
		a.windowless = true
	}
	return a
}

// noteLine is told of every backend line before it is queued; the first one
// activates an Attributor that was waiting for it, which tracks requests
// from then on. Requests that ended before are not known: a pushed line
// naming one by its request id or trace id is attributed by its own marker
// only. Those in flight then are known from their end (finish).
func (a *Attributor) noteLine() {
	if !a.active.Load() { // a load leaves the flag's cache line shared with the proxy's goroutines
		a.active.Store(true)
	}
}

// RequestStarted records a request going upstream.
func (a *Attributor) RequestStarted(s *proxy.RequestStart) {
	if !a.active.Load() {
		return
	}
	f := flight{session: s.Session, start: s.Start, method: requestMethod(s.Method), preflight: s.Preflight}
	if len(s.Path) > 0 {
		f.path = pathKey(a.seed, s.Path)
	}
	// Hashed before the lock is taken, to hold it shorter.
	hasReqID, hasTrace := requestIDUsable(s.RequestID), s.TraceID != ([16]byte{})
	var reqHash, traceHash uint64
	if hasReqID {
		reqHash = a.idHash(s.RequestID)
	}
	if hasTrace {
		traceHash = a.idHash(s.TraceID[:])
	}
	hasSpan := a.hooks && s.SpanID != ([8]byte{})
	var spanHash uint64
	if hasSpan {
		spanHash = a.idHash(s.SpanID[:])
	}
	expires := s.Start.Add(idRetention)
	a.mu.Lock()
	a.advance(s.Start)
	if hasReqID {
		f.reqID = a.ids.add(idRequest, reqHash, s.RequestID,
			idUse{session: f.session, seq: s.Seq, start: s.Start, client: s.ClientRequestID}, expires)
	}
	if hasTrace {
		f.trace = a.ids.add(idTrace, traceHash, s.TraceID[:],
			idUse{session: f.session, seq: s.Seq, start: s.Start, client: s.ClientTrace}, expires)
	}
	if hasSpan { // the proxy made it: never the client's
		f.span = a.ids.add(idSpan, spanHash, s.SpanID[:], idUse{session: f.session, seq: s.Seq, start: s.Start}, expires)
	}
	a.inflight[s.Seq] = f
	a.mu.Unlock()
}

// RequestFinished records the end of a request and releases ev.
func (a *Attributor) RequestFinished(ev *proxy.AccessEvent) {
	a.finish(ev)
	ev.Release()
}

// finish records the end of ev's request; it does not take ownership of ev.
func (a *Attributor) finish(ev *proxy.AccessEvent) {
	if !a.active.Load() {
		return
	}
	end := ev.Start.Add(ev.Duration)
	a.mu.Lock()
	f, ok := a.inflight[ev.Seq]
	if ok {
		delete(a.inflight, ev.Seq)
	} else {
		// The start was not seen (it came before a line activated the
		// Attributor): still count the request, it makes window
		// decisions in its time ambiguous.
		f = flight{session: ev.Session, start: ev.Start, method: requestMethod(ev.Method)}
		if len(ev.Path) > 0 {
			f.path = pathKey(a.seed, ev.Path)
		}
	}
	if a.done.full() {
		a.popDone()
	}
	d := finished{seq: ev.Seq, session: f.session, start: f.start, end: end, path: f.path,
		method: f.method, preflight: f.preflight, answered: len(ev.ProxyError) == 0, status: uint16(ev.Status)}
	// A request the proxy refused before reading a method (malformed)
	// never reached the backend: it cannot be the one a line names.
	if refused := len(ev.Method) == 0 && !d.answered; !refused {
		d.prevSame = a.lastByPath[d.path]
		a.lastByPath[d.path] = a.done.next() + 1
	}
	a.done.push(d)
	a.advance(end)
	for a.done.len() > 0 && a.done.front().end.Add(windowRetention).Before(a.latest) {
		a.popDone()
	}
	// The ids attribute lines until idRetention after the end. Those
	// registered at the start are renewed in place; one dropped since (a
	// request longer than idRetention) or never registered (the start was
	// not seen) is registered now.
	expires := end.Add(idRetention)
	if !a.ids.renew(f.reqID, end, expires) && requestIDUsable(ev.RequestID) {
		a.ids.add(idRequest, a.idHash(ev.RequestID), ev.RequestID,
			idUse{session: f.session, seq: ev.Seq, start: f.start, end: end, client: ev.ClientRequestID}, expires)
	}
	if !a.ids.renew(f.span, end, expires) && a.hooks && ev.SpanID != ([8]byte{}) {
		a.ids.add(idSpan, a.idHash(ev.SpanID[:]), ev.SpanID[:], idUse{session: f.session, seq: ev.Seq, start: f.start, end: end}, expires)
	}
	if !a.ids.renew(f.trace, end, expires) && ev.TraceID != ([16]byte{}) {
		a.ids.add(idTrace, a.idHash(ev.TraceID[:]), ev.TraceID[:],
			idUse{session: f.session, seq: ev.Seq, start: f.start, end: end, client: ev.ClientTrace}, expires)
	}
	a.mu.Unlock()
}

// advance moves the clock of expiry to t, if later, and drops the ids whose
// time is up.
func (a *Attributor) advance(t time.Time) {
	if t.After(a.latest) {
		a.latest = t
	}
	a.ids.expire(a.latest)
}

// popDone drops the oldest finished request from window decisions:
// records up to its end plus the grace can no longer be judged.
func (a *Attributor) popDone() {
	pos := a.done.base
	f := a.done.pop()
	if last, ok := a.lastByPath[f.path]; ok && last == pos+1 {
		delete(a.lastByPath, f.path)
	}
	if h := f.end.Add(a.grace); h.After(a.horizon) {
		a.horizon = h
	}
}

// requestIDUsable says whether a request id is distinctive enough to find in
// free text: 16 to 128 characters with both letters and digits (UUIDs, ULIDs,
// hex and base64 ids). A short or all-digit id could equal a word or number
// that a line prints for another reason.
func requestIDUsable(id []byte) bool {
	if len(id) < 16 || len(id) > 128 {
		return false
	}
	var letter, digit bool
	for _, c := range id {
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			letter = true
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=':
		default:
			return false
		}
	}
	return letter && digit
}
