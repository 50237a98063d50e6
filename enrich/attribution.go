package enrich

import (
	"encoding/hex"
	"slices"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
)

// Attributor.attribute decides which session a backend record belongs
// to, by the invariants on the Attributor type (attribution_tracking.go):
// go doc enrich.Attributor.

type attributionLevel uint8

const (
	attributionNone attributionLevel = iota
	attributionWindow
	attributionExact
)

var attributionNames = [...]string{"none", "window", "exact"}

func (a attributionLevel) String() string { return attributionNames[a] }

const (
	// maxCandidates bounds the candidate sessions kept on an unattributed record.
	maxCandidates = 8
	// accessLineDelay is how long after its request's end an access line
	// naming the request (method, path and status) may be read: servers
	// print it once the response is sent, and logging may lag a little.
	accessLineDelay = time.Second
)

// evidence is what a backend record offers for attribution.
type evidence struct {
	time         time.Time // when its first line was read
	live         bool      // time is within milliseconds of when it was printed (a pipe)
	text         []byte    // all of its lines, searched for ids
	requestID    []byte    // structured fields, when the line had them
	traceID      []byte
	hook         hooks.Mark  // the request a runtime hook marked it with; zero: none
	fieldSession uint64      // the session its structured openReplaySession.id field names
	msgMarker    uint64      // the session of the marker that opens its message
	request      lineRequest // the request its first line names, if any
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
	// The first fieldReq request ids and fieldTrace trace ids come from
	// structured fields; the rest from free text.
	fieldReq, fieldTrace int
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
	if len(ev.requestID) > 0 && len(ev.requestID) <= 128 {
		toks.reqIDs[0] = ev.requestID
		toks.nReq = 1
	}
	if len(ev.traceID) >= 32 {
		toks.scan(ev.traceID)
	}
	toks.fieldReq, toks.fieldTrace = toks.nReq, toks.nTrace
	toks.scan(ev.text)
	toks.hash(a)
	// The record's own claim: a field and a marker that disagree make none.
	claimed := ev.fieldSession
	switch {
	case a.ignoreMarkers:
		claimed = 0
	case claimed == 0:
		claimed = ev.msgMarker
	case ev.msgMarker != 0 && ev.msgMarker != claimed:
		claimed = 0
	}
	// Live records are judged against their candidates (invariant 1):
	// unless the Attributor cannot know them all.
	judged := ev.live && !a.windowless
	if !ev.hook.IsZero() {
		return a.byHook(ev, judged, claimed)
	}

	// Exact evidence: every session the ids name.
	var exact struct {
		found     bool
		ambiguous bool
		session   uint64
		seq       uint64 // 0: no single request
		source    string // the first, strongest kind of evidence
	}
	// note adds one id.
	note := func(e *idEntry, source string, id []byte) {
		switch {
		case e.conflict:
			exact.ambiguous = true
		case !exact.found:
			exact.session, exact.seq, exact.source = e.session, e.seq, source
		case exact.session != e.session:
			exact.ambiguous = true
		case exact.seq != e.seq:
			exact.seq = 0
		}
		exact.found = true
		at.addCandidate(e.session)
		if source == "request-id" && at.requestID == nil {
			at.requestID = id
		} else if source == "trace-id" && at.traceID == nil {
			at.traceID = id
		}
	}
	// counts says whether an id found in the record counts (invariant 3).
	counts := func(e *idEntry, field bool) bool {
		if e == nil || e.client && !field {
			return false
		}
		return !judged || e.inWindow(ev.time, a.grace)
	}

	a.mu.Lock()
	for i, tok := range toks.reqIDs[:toks.nReq] {
		if e := a.ids.lookup(idRequest, toks.reqHashes[i], tok); counts(e, i < toks.fieldReq) {
			note(e, "request-id", tok)
		}
	}
	for i, tok := range toks.traces[:toks.nTrace] {
		if e := a.ids.lookup(idTrace, toks.traceHashes[i], toks.traceIDs[i][:]); counts(e, i < toks.fieldTrace) {
			note(e, "trace-id", tok)
		}
	}
	if exact.found {
		a.mu.Unlock()
		if exact.ambiguous || exact.session == 0 {
			// Conflicting names, or the record belongs to a request
			// without a session.
			return at
		}
		// A marker that disagrees with the ids is text.
		at = attribution{level: attributionExact, session: exact.session, source: exact.source,
			seq: exact.seq, requestID: at.requestID, traceID: at.traceID, ownMarker: claimed == exact.session}
		if at.seq != 0 {
			at.seqBy = at.source
		}
		return at
	}
	if !judged || !ev.time.After(a.horizon) {
		a.mu.Unlock()
		if claimed != 0 && !ev.live {
			// No timing to check the marker against: a file or a push.
			return attribution{level: attributionExact, session: claimed, source: "marker", ownMarker: true}
		}
		return at
	}
	var named uint64 // the key of the path the record's first line names
	if ev.request.found() {
		named = pathKey(a.seed, ev.request.path)
	}
	w := a.window(ev.time, &ev.request, named, claimed)
	a.mu.Unlock()
	return w.decide()
}

// byHook attributes a record a runtime hook marked (invariant 6): to the
// request its span names, if the proxy saw it; derived output only while
// that request may have printed it. The hook knows which request printed
// the record, so a record whose span names no request the proxy knows (a
// request that did not come through replaylink) gets none, not a guess
// by time.
func (a *Attributor) byHook(ev *evidence, judged bool, claimed uint64) attribution {
	h := a.idHash(ev.hook.Span[:])
	a.mu.Lock()
	e := a.ids.lookup(idSpan, h, ev.hook.Span[:])
	ok := e != nil && !e.conflict && e.session != 0 && !(ev.hook.Derived && judged && !e.inWindow(ev.time, a.grace))
	var at attribution
	if ok {
		at = attribution{level: attributionExact, session: e.session, source: "hook", seq: e.seq, seqBy: "hook",
			ownMarker: claimed == e.session}
	}
	a.mu.Unlock()
	return at
}

// window collects the candidates of a record whose first line was read at
// t (invariant 1), those matching the request its line names (named: the
// path's key; 0: it names none), and the requests of the claimed session
// (claimed: the session its own marker or field names; 0: none). The
// caller holds a.mu.
func (a *Attributor) window(t time.Time, req *lineRequest, named, claimed uint64) suspects {
	s := suspects{claimed: claimed, naming: named != 0}
	// candidate says whether a finished request may have printed the line.
	candidate := func(f *finished) bool {
		return !t.Before(f.start) && !t.After(f.end.Add(a.grace)) && !(f.preflight && f.end.Before(t))
	}
	for seq, fl := range a.inflight {
		if t.Before(fl.start) {
			continue // printed before the backend had the request
		}
		f := finished{seq: seq, session: fl.session, path: fl.path, method: fl.method}
		s.add(&f)
		if named != 0 && f.named(req, named) {
			s.byName.add(seq, fl.session)
		}
		if s.settled() && (named == 0 || s.byName.full()) {
			return s
		}
	}
	// Finished requests, newest first, back to those that ended more than
	// the grace before t (give or take the order in which they finished).
	complete := true
	for i := a.done.len() - 1; i >= 0; i-- {
		f := a.done.ptr(a.done.base + uint64(i))
		if f.end.Add(a.grace + finishSkew).Before(t) {
			break
		}
		if candidate(f) {
			s.add(f)
			if s.settled() {
				complete = false
				break
			}
		}
	}
	s.complete = complete
	if named == 0 {
		return s
	}
	// The finished requests with the named path (or an unknown one), by
	// their chain. An access line is printed after its response, so it may
	// be read well after the grace: a request it names that ended up to
	// accessLineDelay before may have printed it. Such a request is never
	// picked (it is no candidate), but the session picked must be its too.
	reach := a.grace
	if req.status != 0 {
		reach = max(a.grace, accessLineDelay)
	}
	for _, key := range [...]uint64{named, 0} {
		for pos := a.lastByPath[key]; pos != 0 && !s.byName.full(); {
			f := a.done.ptr(pos - 1)
			if f == nil || f.end.Add(reach+finishSkew).Before(t) {
				break
			}
			switch {
			case !f.named(req, named) || t.Before(f.start) || f.preflight && f.end.Before(t):
			case candidate(f):
				s.byName.add(f.seq, f.session)
			case !t.After(f.end.Add(reach)):
				s.byName.add(0, f.session) // its session counts; it is never picked
				s.late++
			}
			pos = f.prevSame
		}
	}
	return s
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

// requestSet is a set of requests: how many, their one session, and the
// sessions kept as candidates.
type requestSet struct {
	n       int
	seq     uint64 // the last one added: the only one when n is 1
	session uint64 // the session of them all, unless mixed
	mixed   bool   // two sessions, or sessions and requests without one
	cands   [maxCandidates]uint64
	nCands  int
}

func (g *requestSet) add(seq, session uint64) {
	if g.n == 0 {
		g.session = session
	} else if session != g.session {
		g.mixed = true
	}
	g.n++
	g.seq = seq
	if session == 0 || g.nCands == maxCandidates || slices.Contains(g.cands[:g.nCands], session) {
		return
	}
	g.cands[g.nCands] = session
	g.nCands++
}

// full says that more requests cannot change what the group decides: it is
// mixed and its candidate list is full.
func (g *requestSet) full() bool { return g.mixed && g.nCands == maxCandidates }

// suspects are the candidates of a record (invariant 1) and the subsets
// its name and its marker pick.
type suspects struct {
	all    requestSet // every candidate
	byName requestSet // those matching the request the record names
	naming bool       // the record names a request
	// late counts the requests in byName that ended too long before the
	// record to be candidates, but not so long that they cannot have
	// printed it (an access line read late): they are never picked, but
	// the session picked must be theirs too.
	late     int
	claimed  uint64
	marked   int    // candidates of the claimed session
	markSeq  uint64 // the last of them
	complete bool   // every candidate was seen (the scan did not stop early)
}

// add adds a candidate.
func (s *suspects) add(f *finished) {
	s.all.add(f.seq, f.session)
	if s.claimed != 0 && f.session == s.claimed {
		s.marked++
		s.markSeq = f.seq
	}
}

// settled says that the candidates not seen yet cannot change the decision
// (what the record's name picks aside).
func (s *suspects) settled() bool {
	if s.claimed != 0 {
		return s.marked > 1 // the marker decides, and no single request
	}
	return s.all.full()
}

// decide applies invariants 4 and 5: the claimed session, when it names a
// candidate's session; else the requests the name leaves, when the record
// names one; else all the candidates.
func (s *suspects) decide() attribution {
	if s.marked > 0 {
		at := attribution{level: attributionExact, session: s.claimed, source: "marker", ownMarker: true}
		if s.marked == 1 && s.all.n == 1 && s.complete {
			at.seq, at.seqBy = s.markSeq, "window"
		}
		return at
	}
	g := &s.all
	picked := s.naming && s.byName.n > s.late
	if picked {
		g = &s.byName
	}
	if g.n > 0 && !g.mixed && g.session != 0 && (!s.naming || picked) {
		at := attribution{level: attributionWindow, session: g.session, source: "window"}
		if g.n == 1 && s.late == 0 {
			at.seq, at.seqBy = g.seq, "window"
		}
		return at
	}
	// None: the candidates of every request that may have printed the
	// record, the same every run whatever the map order.
	at := attribution{n: g.nCands, candidates: g.cands}
	slices.Sort(at.candidates[:at.n])
	return at
}
