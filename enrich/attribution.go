package enrich

import (
	"encoding/hex"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replaylink/replaylink/proxy"
)

// Attribution decides which session a backend record belongs to, precision
// first: a record is never attached to a session unless the evidence names
// exactly one.
//
//   - exact: the record carries a request id or a trace id of a request the
//     proxy saw, or its own openReplaySession.id=N marker (see ownmarker.go)
//     that nothing else contradicts: a marker that disagrees with the ids,
//     or names none of the sessions whose requests may have printed the
//     record, is text the backend logged (user input, typically) and counts
//     for nothing;
//   - window: its first line was read (from a live pipe) while the proxied
//     requests in flight, counting AttributionGrace after every request's
//     end, all belonged to one session. A CORS preflight that had ended
//     does not count (browsers send it without the session, right before
//     the request). When the first line names its request (Flask's
//     "Exception on /x [GET]", an access line `"GET /x HTTP/1.1" 500`),
//     only the requests with that method and path count; an access line,
//     printed after the response, may also name a request that ended up to
//     accessLineDelay earlier, and a line naming no request the proxy saw
//     gets none;
//   - none: anything else; the sessions it might belong to are kept as
//     candidates, never in the message.
//
// The Attributor's state is shared by the proxy's request goroutines
// (RequestStarted, RequestFinished) and the pipeline's worker (attribute),
// under one mutex that is held for table operations only: no I/O, no
// allocation once the tables are at their size, nothing that waits.
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

type attributionLevel uint8

const (
	attributionNone attributionLevel = iota
	attributionWindow
	attributionExact
)

var attributionNames = [...]string{"none", "window", "exact"}

func (a attributionLevel) String() string { return attributionNames[a] }

const (
	// windowRetention is how long finished requests stay known for window
	// decisions, and windowCapacity how many at most.
	windowRetention = 30 * time.Second
	windowCapacity  = 1 << 16
	// idRetention is how long after its request ends a request id or trace
	// id still attributes lines, and idCapacity how many ids are kept.
	idRetention = 2 * time.Minute
	idCapacity  = 1 << 17
	// maxCandidates bounds the candidate sessions kept on an unattributed record.
	maxCandidates = 8
	// finishSkew is how far out of end-time order RequestFinished calls may
	// come (they run on different goroutines); the window scan reaches that
	// much further back.
	finishSkew = time.Second
	// accessLineDelay is how long after its request's end an access line
	// naming the request (method, path and status) may be read: servers
	// print it once the response is sent, and logging may lag a little.
	accessLineDelay = time.Second
	// abandonedCapacity bounds the requests the proxy answered itself or
	// whose client went away (see Attributor.abandoned).
	abandonedCapacity = 1024
)

// Attributor tracks the proxy's requests and attributes backend records to
// sessions. It implements proxy.Observer; Pipeline uses it as its own.
type Attributor struct {
	grace time.Duration
	reach time.Duration // how long after its end a request may be named: max(grace, accessLineDelay)
	seed  maphash.Seed  // of path keys and id hashes

	// active is false until the first line when the lines can only be
	// pushed (see noteLine); requests are not tracked meanwhile.
	active atomic.Bool

	mu       sync.Mutex
	inflight map[uint64]flight
	done     ring[finished] // finished requests in RequestFinished order
	// abandoned holds, for windowRetention, the finished requests whose
	// response did not come whole from the upstream (502, 504, client went
	// away): the backend may still be working on them and print their
	// access line much later, so they stay candidates for lines naming
	// their method and path.
	abandoned ring[finished]
	// lastByPath chains the requests in done by path: the absolute
	// position + 1 of the last one with each path key (0: the path is not
	// known), each pointing to the one before (finished.prevSame).
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
// from its start to grace after its end, tracking requests from the start.
func NewAttributor(grace time.Duration) *Attributor {
	a := &Attributor{
		grace:      grace,
		reach:      max(grace, accessLineDelay),
		seed:       maphash.MakeSeed(),
		inflight:   make(map[uint64]flight),
		done:       newRing[finished](windowCapacity),
		abandoned:  newRing[finished](abandonedCapacity),
		lastByPath: make(map[uint64]uint64),
		ids:        newIDTable(),
	}
	a.active.Store(true)
	return a
}

// newAttributor returns the Attributor of a Pipeline with o: with
// o.PushedLinesOnly, one that waits for the first line (see noteLine).
func newAttributor(o Options) *Attributor {
	a := NewAttributor(o.AttributionGrace)
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
	expires := s.Start.Add(idRetention)
	a.mu.Lock()
	a.advance(s.Start)
	if hasReqID {
		f.reqID = a.ids.add(idRequest, reqHash, s.RequestID, f.session, s.Seq, expires)
	}
	if hasTrace {
		f.trace = a.ids.add(idTrace, traceHash, s.TraceID[:], f.session, s.Seq, expires)
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
	if !d.answered && d.path != 0 {
		if a.abandoned.full() {
			a.abandoned.pop()
		}
		a.abandoned.push(d)
	}
	a.advance(end)
	for a.done.len() > 0 && a.done.front().end.Add(windowRetention).Before(a.latest) {
		a.popDone()
	}
	for a.abandoned.len() > 0 && a.abandoned.front().end.Add(windowRetention).Before(a.latest) {
		a.abandoned.pop()
	}
	// The ids attribute lines until idRetention after the end. Those
	// registered at the start are renewed in place; one dropped since (a
	// request longer than idRetention) or never registered (the start was
	// not seen) is registered now.
	expires := end.Add(idRetention)
	if !a.ids.renew(f.reqID, f.session, ev.Seq, expires) && requestIDUsable(ev.RequestID) {
		a.ids.add(idRequest, a.idHash(ev.RequestID), ev.RequestID, f.session, ev.Seq, expires)
	}
	if !a.ids.renew(f.trace, f.session, ev.Seq, expires) && ev.TraceID != ([16]byte{}) {
		a.ids.add(idTrace, a.idHash(ev.TraceID[:]), ev.TraceID[:], f.session, ev.Seq, expires)
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

// popDone drops the oldest finished request from window decisions.
func (a *Attributor) popDone() {
	pos := a.done.base
	f := a.done.pop()
	if last, ok := a.lastByPath[f.path]; ok && last == pos+1 {
		delete(a.lastByPath, f.path)
	}
	a.forget(f)
}

// forget drops a finished request from window decisions: records up to its
// end plus the reach can no longer be judged.
func (a *Attributor) forget(f finished) {
	if h := f.end.Add(a.reach); h.After(a.horizon) {
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

// evidence is what a backend record offers for attribution.
type evidence struct {
	time      time.Time // when its first line was read
	live      bool      // time is within milliseconds of when it was printed (a pipe)
	text      []byte    // all of its lines, searched for ids
	requestID []byte    // structured fields, when the line had them
	traceID   []byte
	marker    uint64      // the session its structured openReplaySession.id field names
	msgMarker uint64      // the session of the marker that opens its message
	request   lineRequest // the request its first line names, if any
}

// attribution is the decision for one record.
type attribution struct {
	level      attributionLevel
	session    uint64
	source     string // request-id, trace-id, marker, window
	seq        uint64 // the request the record belongs to, when known
	seqBy      string // how seq was found: request-id, trace-id, window
	ownMarker  bool   // the record's own marker named session, and counted
	requestID  []byte // the id that matched, from the record's text
	traceID    []byte
	candidates [maxCandidates]uint64
	n          int
}

func (at *attribution) addCandidate(s uint64) {
	if s == 0 {
		return
	}
	for _, c := range at.candidates[:at.n] {
		if c == s {
			return
		}
	}
	if at.n < maxCandidates {
		at.candidates[at.n] = s
		at.n++
	}
}

// tokens found in a record's text that may be ids; bounded so that a huge
// record costs a bounded number of lookups.
const maxIDTokens = 32

type idTokens struct {
	reqIDs      [maxIDTokens][]byte
	reqHashes   [maxIDTokens]uint64
	nReq        int
	traces      [maxIDTokens][]byte   // as written
	traceIDs    [maxIDTokens][16]byte // decoded
	traceHashes [maxIDTokens]uint64
	nTrace      int
}

// scanIDs collects the words of text that could be a request id (runs of
// letters, digits, '-' and '_' of 16 to 128 bytes) or a trace id (runs of
// exactly 32 hex digits, e.g. inside a traceparent).
func (t *idTokens) scan(text []byte) {
	for i := 0; i < len(text) && (t.nReq < maxIDTokens || t.nTrace < maxIDTokens); {
		if !isIDByte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isIDByte(text[j]) {
			j++
		}
		if n := j - i; n >= 16 && n <= 128 && t.nReq < maxIDTokens {
			t.reqIDs[t.nReq] = text[i:j]
			t.nReq++
		}
		for k := i; k < j; { // hex runs inside the word
			if !isHexByte(text[k]) {
				k++
				continue
			}
			h := k
			for h < j && isHexByte(text[h]) {
				h++
			}
			if h-k == 32 && t.nTrace < maxIDTokens {
				t.traces[t.nTrace] = text[k:h]
				hex.Decode(t.traceIDs[t.nTrace][:], text[k:h]) // hex digits only: no error
				t.nTrace++
			}
			k = h
		}
		i = j
	}
}

// hash computes the tokens' idHash before the lock is taken.
func (t *idTokens) hash(a *Attributor) {
	for i, tok := range t.reqIDs[:t.nReq] {
		t.reqHashes[i] = a.idHash(tok)
	}
	for i := range t.nTrace {
		t.traceHashes[i] = a.idHash(t.traceIDs[i][:])
	}
}

func isIDByte(c byte) bool { return isWordByte(c) || c == '-' }

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// attribute decides which session ev belongs to.
func (a *Attributor) attribute(ev *evidence) attribution {
	var at attribution
	var toks idTokens
	if len(ev.requestID) > 0 && len(ev.requestID) <= 128 && toks.nReq < maxIDTokens {
		toks.reqIDs[toks.nReq] = ev.requestID
		toks.nReq++
	}
	if len(ev.traceID) >= 32 {
		toks.scan(ev.traceID)
	}
	toks.scan(ev.text)
	toks.hash(a)
	// The record's own claim: a field and a marker that disagree make none.
	marker := ev.marker
	switch {
	case marker == 0:
		marker = ev.msgMarker
	case ev.msgMarker != 0 && ev.msgMarker != marker:
		marker = 0
	}

	// Exact evidence: every session it names, and how strong each name is.
	var exact struct {
		found     bool
		ambiguous bool
		session   uint64
		seq       uint64 // 0: no single request
		source    string // the first, strongest kind of evidence
	}
	// note adds one id.
	note := func(session, seq uint64, conflict bool, source string, id []byte) {
		switch {
		case conflict:
			exact.ambiguous = true
		case !exact.found:
			exact.session, exact.seq, exact.source = session, seq, source
		case exact.session != session:
			exact.ambiguous = true
		case exact.seq != seq:
			exact.seq = 0
		}
		exact.found = true
		at.addCandidate(session)
		if source == "request-id" && at.requestID == nil {
			at.requestID = id
		} else if source == "trace-id" && at.traceID == nil {
			at.traceID = id
		}
	}

	var named uint64 // the key of the path the record's first line names
	if ev.request.found() {
		named = pathKey(a.seed, ev.request.path)
	}

	a.mu.Lock()
	for i, tok := range toks.reqIDs[:toks.nReq] {
		if e := a.ids.lookup(idRequest, toks.reqHashes[i], tok); e != nil {
			note(e.session, e.seq, e.conflict, "request-id", tok)
		}
	}
	for i, tok := range toks.traces[:toks.nTrace] {
		if e := a.ids.lookup(idTrace, toks.traceHashes[i], toks.traceIDs[i][:]); e != nil {
			note(e.session, e.seq, e.conflict, "trace-id", tok)
		}
	}
	if exact.found {
		a.mu.Unlock()
		// A marker that disagrees with the ids is text, and so is one
		// beside ids that name no single session.
		if exact.ambiguous || exact.session == 0 {
			// Conflicting names, or the record belongs to a request
			// without a session.
			return at
		}
		at = attribution{level: attributionExact, session: exact.session, source: exact.source,
			seq: exact.seq, requestID: at.requestID, traceID: at.traceID, ownMarker: marker == exact.session}
		if at.seq != 0 {
			at.seqBy = at.source
		}
		return at
	}
	if !ev.live || a.windowless || !ev.time.After(a.horizon) {
		a.mu.Unlock()
		if marker != 0 {
			// No timing to check the marker against: a file, a push, a
			// time older than the requests still known, or requests
			// never all known.
			return attribution{level: attributionExact, session: marker, source: "marker", ownMarker: true}
		}
		return at
	}
	w := a.window(ev.time, &ev.request, named, marker)
	a.mu.Unlock()
	return w.decide()
}

// window collects the requests that may have printed a record whose first
// line was read at t (see Attributor): byTime by the time alone, byName
// those with the method and path the line names (named: the path's key).
// marker is the session the record's own marker names (0: none); the
// suspects count its requests, and the scan does not stop before it has
// seen one. The caller holds a.mu.
func (a *Attributor) window(t time.Time, req *lineRequest, named, marker uint64) suspects {
	byTime, byName := suspects{marker: marker}, suspects{marker: marker}
	reach := a.grace
	if named != 0 && req.status != 0 {
		reach = a.reach // an access line: printed after the response
	}
	// Enough is known once the requests that count name two sessions and
	// the candidate list is full: with many requests in flight, the scan
	// stops early.
	settled := func() bool {
		if named != 0 {
			return byName.settled()
		}
		return byTime.settled()
	}
	for seq, fl := range a.inflight {
		if t.Before(fl.start) {
			continue // printed before the backend had the request
		}
		byTime.add(seq, fl.session)
		f := finished{path: fl.path, method: fl.method}
		if named != 0 && f.named(req, named) {
			byName.add(seq, fl.session)
		}
		if settled() {
			break
		}
	}
	// Finished requests, newest first, back to those that ended more than
	// grace before t (give or take the order in which they finished).
	for i := a.done.len() - 1; i >= 0 && !byTime.settled(); i-- {
		f := a.done.ptr(a.done.base + uint64(i))
		if f.end.Add(a.grace + finishSkew).Before(t) {
			break
		}
		// A preflight that had ended is the browser's, sent right
		// before the request it asks for; the backend runs no app code
		// for it.
		if !t.Before(f.start) && !t.After(f.end.Add(a.grace)) && !(f.preflight && f.end.Before(t)) {
			byTime.add(f.seq, f.session)
		}
	}
	if named == 0 {
		return byTime
	}
	// Finished requests with the named path (or an unknown one), back to
	// those that ended more than reach before t.
	for _, key := range [...]uint64{named, 0} {
		for pos := a.lastByPath[key]; pos != 0 && !byName.settled(); {
			f := a.done.ptr(pos - 1)
			if f == nil || f.end.Add(reach+finishSkew).Before(t) {
				break
			}
			if !t.Before(f.start) && !t.After(f.end.Add(reach)) && f.named(req, named) {
				byName.add(f.seq, f.session)
			}
			pos = f.prevSame
		}
	}
	// Requests the backend may still have been working on after the proxy
	// gave up on them.
	for i := a.abandoned.len() - 1; i >= 0 && !byName.settled(); i-- {
		f := a.abandoned.ptr(a.abandoned.base + uint64(i))
		if !t.Before(f.start) && !t.After(f.end.Add(windowRetention)) && f.end.Add(reach).Before(t) && f.named(req, named) {
			byName.add(f.seq, f.session)
		}
	}
	if byName.n > 0 {
		return byName
	}
	// A line that names a request the proxy did not see in its time (a
	// health check sent to the backend directly, a path the backend
	// rewrote) belongs to none of the requests in flight: byTime is
	// returned for its candidates only.
	byTime.unnamed = true
	return byTime
}

// named reports whether f may be the request that a line naming req (whose
// path has the key named) is about. What f does not tell (a request seen
// without its method or path) does not rule it out.
func (f *finished) named(req *lineRequest, named uint64) bool {
	switch {
	case f.method != methodUnknown && req.method != methodUnknown && f.method != req.method:
		return false
	case f.path != 0 && f.path != named:
		return false
	case req.status != 0 && f.answered && f.status != 0 && int(f.status) != req.status:
		return false // an access line reports the status the backend sent
	}
	return true
}

// suspects are the requests that may have printed a record.
type suspects struct {
	n       int    // requests
	seq     uint64 // the last one added: the only one when n is 1
	session uint64 // the session of them all, unless mixed
	mixed   bool   // two sessions, or sessions and requests without one
	unnamed bool   // the record names a request that is none of these
	cands   [maxCandidates]uint64
	nCands  int
	marker  uint64 // the session the record's own marker names; 0: none
	marked  bool   // one of the requests is of that session
}

func (s *suspects) add(seq, session uint64) {
	if session == s.marker {
		s.marked = true
	}
	if s.n == 0 {
		s.session = session
	} else if session != s.session {
		s.mixed = true
	}
	s.n++
	s.seq = seq
	if session == 0 || s.nCands == maxCandidates {
		return
	}
	for _, c := range s.cands[:s.nCands] {
		if c == session {
			return
		}
	}
	s.cands[s.nCands] = session
	s.nCands++
}

func (s *suspects) settled() bool {
	return s.mixed && s.nCands == maxCandidates && (s.marker == 0 || s.marked)
}

// decide attributes the record to the one session of all the suspects, and
// to the request when there is only one. Requests without a session count:
// one of them may have printed the record.
//
// The record's own marker decides instead when it names the session of one
// of the suspects, or when there are none (nothing printed in the time of a
// proxied request: a background job, a request that did not come through
// the proxy). When it names none of the sessions whose requests may have
// printed the record, it is text the backend logged, and counts for nothing.
func (s *suspects) decide() attribution {
	single := s.n > 0 && !s.mixed && !s.unnamed
	if s.marker != 0 && (s.n == 0 || s.marked) {
		at := attribution{level: attributionExact, session: s.marker, source: "marker", ownMarker: true}
		if single && s.n == 1 {
			at.seq, at.seqBy = s.seq, "window"
		}
		return at
	}
	if single && s.session != 0 {
		at := attribution{level: attributionWindow, session: s.session, source: "window"}
		if s.n == 1 {
			at.seq, at.seqBy = s.seq, "window"
		}
		return at
	}
	at := attribution{n: s.nCands}
	at.candidates = s.cands
	slices.Sort(at.candidates[:at.n]) // the same every run, whatever the map order
	return at
}
