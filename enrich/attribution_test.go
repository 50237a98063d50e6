package enrich

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/proxy"
)

const grace = 20 * time.Millisecond

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func start(a *Attributor, seq, session uint64, at time.Time, reqID string, trace string) {
	s := &proxy.RequestStart{Seq: seq, Start: at, Session: session, RequestID: []byte(reqID)}
	if trace != "" {
		hex.Decode(s.TraceID[:], []byte(trace))
	}
	a.RequestStarted(s)
}

func finish(a *Attributor, seq, session uint64, from, to time.Time) {
	ev := proxy.AcquireEvent()
	ev.Seq, ev.Session, ev.Start, ev.Duration = seq, session, from, to.Sub(from)
	a.RequestFinished(ev)
}

// attr attributes a one-line record read at at, as the assembler does.
func attr(a *Attributor, at time.Time, text string) attribution {
	var lp lineParser
	p := lp.parse([]byte(text))
	return a.attribute(&evidence{time: at, live: true, text: []byte(text), request: findRequest([]byte(text)),
		fieldSession: p.fieldSession, msgMarker: p.msgMarker})
}

// request is a proxied request for the window tests.
type request struct {
	seq, session uint64
	method, path string
	preflight    bool
	from, to     time.Time // to zero: still in flight
	status       int
	proxyError   string // the proxy answered itself, or the client went away
}

func (r request) start(a *Attributor) {
	a.RequestStarted(&proxy.RequestStart{Seq: r.seq, Start: r.from, Session: r.session,
		Method: []byte(r.method), Path: []byte(r.path), Preflight: r.preflight})
}

func (r request) finish(a *Attributor) {
	ev := accessEvent(r.seq, r.session, r.from, r.to.Sub(r.from), r.method, r.path, r.status)
	ev.ProxyError = append(ev.ProxyError, r.proxyError...)
	a.RequestFinished(ev)
}

func (r request) run(a *Attributor) {
	r.start(a)
	if !r.to.IsZero() {
		r.finish(a)
	}
}

// want is an expected attribution: a session and request, or none with
// candidates.
type want struct {
	session, seq uint64
	cands        []uint64
}

func checkAttr(t *testing.T, a *Attributor, at time.Time, text string, w want) {
	t.Helper()
	got := attr(a, at, text)
	if got.session != w.session || got.seq != w.seq ||
		got.level == attributionNone && fmt.Sprint(candidates(got)) != fmt.Sprint(w.cands) {
		t.Errorf("%q at %v: got session %d seq %d %s candidates %v; want %d %d %v",
			text, at.Sub(t0), got.session, got.seq, got.level, candidates(got), w.session, w.seq, w.cands)
	}
	if got.session != 0 && (got.level != attributionWindow || got.source != "window") {
		t.Errorf("%q at %v: %s/%s, want window", text, at.Sub(t0), got.level, got.source)
	}
}

func candidates(at attribution) []uint64 {
	c := slices.Clone(at.candidates[:at.n])
	slices.Sort(c)
	return c
}

func TestAttributeExact(t *testing.T) {
	a := NewAttributor(grace)
	const rid5, rid6 = "01HWX3K9Q7ZP4M2B8N6C5D1E0F", "3f1c2b9e-8d4a-4c51-9a7e-2b6f0d1e4a77"
	const trace7 = "4bf92f3577b34da6a3ce929d0e0e4736"
	start(a, 1, 5, ms(0), rid5, "")
	start(a, 2, 6, ms(1), rid6, "")
	start(a, 3, 7, ms(2), "", trace7)
	start(a, 4, 0, ms(3), "req-without-session-0123456789", "") // no session
	start(a, 5, 8, ms(4), "12345", "")                          // too short to look for
	for _, tc := range []struct {
		name    string
		text    string
		ev      evidence
		level   attributionLevel
		session uint64
		source  string
		seq     uint64
		cands   []uint64
	}{
		{name: "request id in text", text: "E, [..] ERROR -- : [" + rid5 + "] boom", level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "uuid request id", text: "[" + rid6 + "] Completed 500", level: attributionExact, session: 6, source: "request-id", seq: 2},
		{name: "structured request id", ev: evidence{requestID: []byte(rid6)}, level: attributionExact, session: 6, source: "request-id", seq: 2},
		{name: "trace id in a traceparent", text: "traceparent=00-" + trace7 + "-00f067aa0ba902b7-01 failed", level: attributionExact, session: 7, source: "trace-id", seq: 3},
		{name: "upper-case trace id", text: "trace " + strings.ToUpper(trace7), level: attributionExact, session: 7, source: "trace-id", seq: 3},
		{name: "structured trace id", ev: evidence{traceID: []byte("projects/p/traces/" + trace7)}, level: attributionExact, session: 7, source: "trace-id", seq: 3},
		{name: "the line's own marker", text: "INFO:root:[openReplaySession.id=6] hi", level: attributionExact, session: 6, source: "marker"},
		{name: "a marker for none of the sessions in flight", text: "INFO:root:[openReplaySession.id=99] hi", cands: []uint64{5, 6, 7, 8}},
		{name: "marker and request id agree", text: "[openReplaySession.id=5] " + rid5, level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "marker and request id disagree", text: "[openReplaySession.id=6] " + rid5, level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "two request ids of two sessions", text: rid5 + " then " + rid6, cands: []uint64{5, 6}},
		{name: "the id of a request without a session", text: "req-without-session-0123456789 failed"},
		{name: "a short id is not looked for", text: "id 12345 failed", cands: []uint64{5, 6, 7, 8}},
		{name: "an id glued into a longer word does not match", text: "x" + rid5, cands: []uint64{5, 6, 7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			ev.time, ev.live, ev.text = ms(10), true, []byte(tc.text)
			ev.msgMarker = leadingMarker(ev.text)
			at := a.attribute(&ev)
			if at.level != tc.level || at.session != tc.session || at.source != tc.source || at.seq != tc.seq {
				t.Errorf("got %s session %d source %q seq %d, want %s %d %q %d", at.level, at.session, at.source, at.seq, tc.level, tc.session, tc.source, tc.seq)
			}
			if got := candidates(at); tc.level == attributionNone && fmt.Sprint(got) != fmt.Sprint(tc.cands) {
				t.Errorf("candidates %v, want %v", got, tc.cands)
			}
		})
	}
}

// TestAttributeOwnMarker: a backend line's own marker counts only when
// nothing contradicts it. The forging attempts are user input that the
// backend echoes where the guide's filter would put the marker, while
// serving another session's request.
func TestAttributeOwnMarker(t *testing.T) {
	const rid5 = "01HWX3K9Q7ZP4M2B8N6C5D1E0F"
	const trace5 = "4bf92f3577b34da6a3ce929d0e0e4736"
	alone := func() *Attributor { // session 5's request 1 in flight
		a := NewAttributor(grace)
		start(a, 1, 5, ms(0), rid5, trace5)
		return a
	}
	for _, tc := range []struct {
		name      string
		a         func() *Attributor
		text      string
		field     uint64 // a structured openReplaySession.id
		file      bool   // read from a tailed file: no timing
		level     attributionLevel
		session   uint64
		source    string
		seq       uint64
		ownMarker bool
		cands     []uint64
	}{
		{name: "forged: timing names another session", a: alone, text: "INFO:app:[openReplaySession.id=999] q",
			level: attributionWindow, session: 5, source: "window", seq: 1},
		{name: "forged: the request id names another session", a: alone, text: "INFO:app:[openReplaySession.id=999] " + rid5,
			level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "forged: the trace id names another session", a: alone, text: "INFO:app:[openReplaySession.id=999] trace=" + trace5,
			level: attributionExact, session: 5, source: "trace-id", seq: 1},
		{name: "forged: a request id, read from a file", a: alone, file: true, text: "INFO:app:[openReplaySession.id=999] " + rid5,
			level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "forged: a structured field", a: alone, text: `{"msg":"q"}`, field: 999,
			level: attributionWindow, session: 5, source: "window", seq: 1},
		{name: "forged: the marker in the middle of the message", a: alone, text: "INFO user searched for [openReplaySession.id=999] q",
			level: attributionWindow, session: 5, source: "window", seq: 1},
		{name: "forged: a field and a marker that disagree", a: alone, text: "[openReplaySession.id=5] q", field: 999,
			level: attributionWindow, session: 5, source: "window", seq: 1},
		{name: "forged: none of the sessions in flight", a: func() *Attributor {
			a := alone()
			start(a, 2, 6, ms(1), "", "")
			return a
		}, text: "INFO:app:[openReplaySession.id=999] q", cands: []uint64{5, 6}},
		{name: "forged: only a request without a session in flight", a: func() *Attributor {
			a := NewAttributor(grace)
			start(a, 1, 0, ms(0), "", "")
			return a
		}, text: "INFO:app:[openReplaySession.id=999] q"},
		{name: "forged: a marker for no candidate, on a line naming its request", a: func() *Attributor {
			a := NewAttributor(grace)
			request{seq: 1, session: 5, method: "GET", path: "/search", from: ms(0)}.run(a)
			request{seq: 2, session: 6, method: "GET", path: "/other", from: ms(1)}.run(a)
			return a
		}, text: "ERROR:app:[openReplaySession.id=999] Exception on /search [GET]",
			level: attributionWindow, session: 5, source: "window", seq: 1},
		{name: "forged: a marker with nobody in flight", a: func() *Attributor {
			a := NewAttributor(grace)
			request{seq: 1, session: 5, from: ms(-100), to: ms(-90)}.run(a)
			return a
		}, text: "INFO:app:[openReplaySession.id=999] background job"},
		{name: "forged: a marker when the header is not trusted", a: func() *Attributor {
			a := alone()
			a.ignoreMarkers = true
			start(a, 2, 999, ms(1), "", "")
			return a
		}, text: "INFO:app:[openReplaySession.id=999] q", cands: []uint64{5, 999}},
		{name: "forged: a marker in a file when the header is not trusted", a: func() *Attributor {
			a := alone()
			a.ignoreMarkers = true
			return a
		}, file: true, text: "INFO:app:[openReplaySession.id=999] q"},

		{name: "the guide's marker, agreeing with the timing", a: alone, text: "ERROR:app:[openReplaySession.id=5] boom",
			level: attributionExact, session: 5, source: "marker", seq: 1, ownMarker: true},
		{name: "the guide's marker, agreeing with the request id", a: alone, text: "ERROR:app:[openReplaySession.id=5] " + rid5,
			level: attributionExact, session: 5, source: "request-id", seq: 1, ownMarker: true},
		{name: "the guide's marker among concurrent sessions", a: func() *Attributor {
			a := alone()
			start(a, 2, 6, ms(1), "", "")
			start(a, 3, 0, ms(2), "", "")
			return a
		}, text: "INFO:app:[openReplaySession.id=6] x", level: attributionExact, session: 6, source: "marker", ownMarker: true},
		{name: "the guide's marker among more sessions than the candidates kept", a: func() *Attributor {
			a := NewAttributor(grace)
			for i := range uint64(40) {
				start(a, i+1, 100+i, ms(0), "", "")
			}
			return a
		}, text: "INFO:app:[openReplaySession.id=139] x", level: attributionExact, session: 139, source: "marker", ownMarker: true},
		{name: "the guide's marker ahead of a name", a: func() *Attributor {
			a := NewAttributor(grace)
			request{seq: 1, session: 5, method: "GET", path: "/search", from: ms(0)}.run(a)
			request{seq: 2, session: 999, method: "GET", path: "/other", from: ms(1)}.run(a)
			return a
		}, text: "ERROR:app:[openReplaySession.id=999] Exception on /search [GET]",
			level: attributionExact, session: 999, source: "marker", ownMarker: true},
		{name: "the guide's marker in a file", a: alone, file: true, text: "INFO:app:[openReplaySession.id=999] x",
			level: attributionExact, session: 999, source: "marker", ownMarker: true},
		{name: "a structured field", a: alone, text: `{"msg":"x"}`, field: 5,
			level: attributionExact, session: 5, source: "marker", seq: 1, ownMarker: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lp lineParser
			p := lp.parse([]byte(tc.text))
			ev := evidence{time: ms(5), live: !tc.file, text: []byte(tc.text), fieldSession: tc.field, msgMarker: p.msgMarker,
				requestID: p.requestID, traceID: p.traceID}
			if ev.live {
				ev.request = findRequest(p.message)
			}
			at := tc.a().attribute(&ev)
			if at.level != tc.level || at.session != tc.session || at.source != tc.source || at.seq != tc.seq || at.ownMarker != tc.ownMarker {
				t.Errorf("got %s session %d source %q seq %d ownMarker %v, want %s %d %q %d %v",
					at.level, at.session, at.source, at.seq, at.ownMarker, tc.level, tc.session, tc.source, tc.seq, tc.ownMarker)
			}
			if got := candidates(at); tc.level == attributionNone && fmt.Sprint(got) != fmt.Sprint(tc.cands) {
				t.Errorf("candidates %v, want %v", got, tc.cands)
			}
		})
	}
}

// TestAttributeIDsOnlyInTheirWindow (invariant 3): an id the client chose
// counts in a structured field only, and a live record matches an id only
// while its request may have printed it. A client that chose an id, or
// learned the one replaylink made from its response's X-Request-ID, cannot
// pull another user's lines into its session by planting the id in that
// user's input.
func TestAttributeIDsOnlyInTheirWindow(t *testing.T) {
	const chosen, made = "order7f3a9c2e11d04b", "5f0c2a9e8d4b4c51a9e72b6f0d1e4a77"
	const chosenTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	a := NewAttributor(grace)
	a.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 5, RequestID: []byte(chosen), ClientRequestID: true})
	a.RequestStarted(&proxy.RequestStart{Seq: 2, Start: ms(0), Session: 5, RequestID: []byte(made)})
	ts := &proxy.RequestStart{Seq: 3, Start: ms(0), Session: 5, ClientTrace: true}
	hex.Decode(ts.TraceID[:], []byte(chosenTrace))
	a.RequestStarted(ts)
	for seq := range uint64(3) {
		finish(a, seq+1, 5, ms(0), ms(10))
	}
	request{seq: 4, session: 6, method: "GET", path: "/search", from: ms(50)}.run(a) // the other user's request
	for _, tc := range []struct {
		name    string
		at      time.Time
		file    bool
		text    string
		field   string // a structured request id
		session uint64
		level   attributionLevel
		seq     uint64
	}{
		{name: "chosen id in free text", at: ms(5), text: "search for " + chosen, session: 5, level: attributionWindow},
		{name: "chosen id in another user's input", at: ms(60), text: "search for " + chosen, session: 6, level: attributionWindow, seq: 4},
		{name: "chosen id in a structured field", at: ms(5), text: `{"msg":"x"}`, field: chosen, session: 5, level: attributionExact, seq: 1},
		{name: "chosen id in a structured field after its window", at: ms(60), text: `{"msg":"x"}`, field: chosen, session: 6, level: attributionWindow, seq: 4},
		{name: "chosen trace id in free text", at: ms(60), text: "trace " + chosenTrace, session: 6, level: attributionWindow, seq: 4},
		{name: "made id in free text", at: ms(25), text: "done " + made, session: 5, level: attributionExact, seq: 2},
		{name: "made id in another user's input", at: ms(60), text: "search for " + made, session: 6, level: attributionWindow, seq: 4},
		{name: "made id in a file", at: ms(60), file: true, text: "done " + made, session: 5, level: attributionExact, seq: 2},
		{name: "chosen id in a file", at: ms(60), file: true, text: "done " + chosen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := evidence{time: tc.at, live: !tc.file, text: []byte(tc.text), requestID: []byte(tc.field)}
			at := a.attribute(&ev)
			if at.session != tc.session || at.level != tc.level || at.seq != tc.seq {
				t.Errorf("got %s session %d seq %d, want %s %d %d", at.level, at.session, at.seq, tc.level, tc.session, tc.seq)
			}
		})
	}
}

func TestAttributeIDConflicts(t *testing.T) {
	a := NewAttributor(grace)
	const rid = "client-chosen-id-0000000001"
	start(a, 1, 5, ms(0), rid, "")
	finish(a, 1, 5, ms(0), ms(5))
	start(a, 2, 6, ms(100), rid, "") // another session sends the same id
	at := attr(a, ms(101), "processing "+rid)
	if at.level != attributionNone {
		t.Fatalf("an id used by two sessions must not attribute: %+v", at)
	}
	// One session reusing its id (a retry) still identifies the session, but no single request.
	b := NewAttributor(grace)
	start(b, 1, 5, ms(0), rid, "")
	finish(b, 1, 5, ms(0), ms(5))
	start(b, 2, 5, ms(100), rid, "")
	if at := attr(b, ms(300), "processing "+rid); at.level != attributionExact || at.session != 5 || at.seq != 0 {
		t.Fatalf("retry: %+v", at)
	}
}

func TestAttributeIDExpiry(t *testing.T) {
	a := NewAttributor(grace)
	const rid = "01HWX3K9Q7ZP4M2B8N6C5D1E0F"
	start(a, 1, 5, ms(0), rid, "")
	finish(a, 1, 5, ms(0), ms(10))
	if at := attr(a, ms(20), rid); at.level != attributionExact {
		t.Fatalf("fresh id: %+v", at)
	}
	// Time moves on with other requests; the id is forgotten idRetention after its request ended.
	later := ms(10).Add(idRetention + time.Second)
	start(a, 2, 6, later, "", "")
	if at := attr(a, later.Add(time.Second), rid); at.level == attributionExact {
		t.Fatalf("expired id still attributes: %+v", at)
	}
	if a.ids.len() != 0 {
		t.Errorf("%d request ids kept", a.ids.len())
	}
}

func TestAttributeWindow(t *testing.T) {
	a := NewAttributor(grace)
	start(a, 1, 5, ms(100), "", "")
	finish(a, 1, 5, ms(100), ms(200))
	start(a, 2, 6, ms(300), "", "")
	finish(a, 2, 6, ms(300), ms(400))
	start(a, 3, 0, ms(500), "", "") // no session, still in flight
	start(a, 4, 7, ms(510), "", "")
	for _, tc := range []struct {
		at      time.Time
		session uint64
		seq     uint64
		cands   []uint64
	}{
		{ms(90), 0, 0, nil},             // before the start: printed before the request
		{ms(100), 5, 1, nil},            // at the start
		{ms(150), 5, 1, nil},            // inside
		{ms(219), 5, 1, nil},            // inside the grace after the end
		{ms(250), 0, 0, nil},            // between requests: nobody
		{ms(299), 0, 0, nil},            // just before request 2
		{ms(350), 6, 2, nil},            // request 2 alone
		{ms(505), 0, 0, nil},            // the session-less request alone: no session to give
		{ms(515), 0, 0, []uint64{7}},    // two in flight, one without a session: ambiguous
		{ms(10_000), 0, 0, []uint64{7}}, // still in flight, long after
	} {
		at := attr(a, tc.at, "some line")
		if at.session != tc.session || at.seq != tc.seq || fmt.Sprint(candidates(at)) != fmt.Sprint(tc.cands) && at.level == attributionNone {
			t.Errorf("line at %v: got session %d seq %d %s candidates %v; want %d %d %v",
				tc.at.Sub(t0), at.session, at.seq, at.level, candidates(at), tc.session, tc.seq, tc.cands)
		}
		if at.session != 0 && (at.level != attributionWindow || at.source != "window") {
			t.Errorf("line at %v: %s/%s", tc.at.Sub(t0), at.level, at.source)
		}
	}
	// Overlap: two sessions in flight.
	b := NewAttributor(grace)
	start(b, 1, 5, ms(0), "", "")
	start(b, 2, 6, ms(50), "", "")
	finish(b, 1, 5, ms(0), ms(100))
	if at := attr(b, ms(60), "x"); at.level != attributionNone || fmt.Sprint(candidates(at)) != "[5 6]" {
		t.Errorf("overlap: %+v", at)
	}
	if at := attr(b, ms(110), "x"); at.level != attributionNone {
		t.Errorf("within grace of the first end: %+v", at)
	}
	if at := attr(b, ms(121), "x"); at.session != 6 {
		t.Errorf("after the first request's grace: %+v", at)
	}
}

// TestAttributeWindowOneSession: requests of one session do not compete
// for a line; a request without a session does.
func TestAttributeWindowOneSession(t *testing.T) {
	a := NewAttributor(grace)
	request{seq: 1, session: 5, method: "GET", path: "/a", from: ms(0), to: ms(10), status: 200}.run(a)
	request{seq: 2, session: 5, method: "GET", path: "/b", from: ms(15)}.run(a)
	request{seq: 3, session: 5, method: "GET", path: "/c", from: ms(16)}.run(a)
	checkAttr(t, a, ms(12), "working", want{session: 5, seq: 1}) // request 1 alone
	checkAttr(t, a, ms(20), "working", want{session: 5})         // three of session 5: no single request
	request{seq: 4, session: 0, method: "GET", path: "/d", from: ms(25)}.run(a)
	checkAttr(t, a, ms(30), "working", want{cands: []uint64{5}}) // the one without a session may have printed it
	request{seq: 5, session: 6, method: "GET", path: "/e", from: ms(40)}.run(a)
	checkAttr(t, a, ms(45), "working", want{cands: []uint64{5, 6}})
}

// TestAttributeWindowPreflight is what a browser does: a CORS preflight
// without the session, right before the request with it, while the page's
// previous call ends.
func TestAttributeWindowPreflight(t *testing.T) {
	a := NewAttributor(grace)
	endpoint := request{seq: 1, session: 5, method: "GET", path: "/api/endpoint", from: ms(90), to: ms(101), status: 200}
	preflight := request{seq: 2, method: "OPTIONS", path: "/api/cart", preflight: true, from: ms(100), to: ms(102), status: 200}
	cart := request{seq: 3, session: 5, method: "GET", path: "/api/cart", from: ms(103)}
	for _, r := range []request{endpoint, preflight, cart} {
		r.run(a)
	}
	checkAttr(t, a, ms(101), "INFO:root:working", want{cands: []uint64{5}})                      // the preflight is still in flight
	checkAttr(t, a, ms(110), "INFO:root:working", want{session: 5})                              // it has ended: two requests of session 5
	checkAttr(t, a, ms(110), "ERROR:app:Exception on /api/cart [GET]", want{session: 5, seq: 3}) // the line names its request
	cart.to, cart.status = ms(120), 500
	cart.finish(a)
	access := `INFO:werkzeug:127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart HTTP/1.1" 500 -`
	checkAttr(t, a, ms(121), access, want{session: 5, seq: 3})
	checkAttr(t, a, ms(120).Add(grace+time.Millisecond), access, want{})                                        // a name adds no request that has ended
	checkAttr(t, a, ms(102), `127.0.0.1 - - [24/Nov/2026 23:53:42] "OPTIONS /api/cart HTTP/1.1" 200 -`, want{}) // the preflight's own line: no session to give

	// An OPTIONS that is not a preflight runs the app's code: it counts.
	b := NewAttributor(grace)
	request{seq: 1, method: "OPTIONS", path: "/api/cart", from: ms(100), to: ms(102), status: 200}.run(b)
	request{seq: 2, session: 5, method: "GET", path: "/api/cart", from: ms(103)}.run(b)
	checkAttr(t, b, ms(110), "INFO:root:working", want{cands: []uint64{5}})
}

// TestAttributeNamedRequest: a line that names its request (method and
// path) is attributed among the requests in flight that match it.
func TestAttributeNamedRequest(t *testing.T) {
	a := NewAttributor(grace)
	request{seq: 1, session: 5, method: "GET", path: "/api/cart", from: ms(0)}.run(a)
	request{seq: 2, session: 6, method: "GET", path: "/api/products", from: ms(1)}.run(a)
	request{seq: 3, session: 0, method: "POST", path: "/api/log", from: ms(2)}.run(a)
	checkAttr(t, a, ms(5), "ERROR:app:Exception on /api/cart [GET]", want{session: 5, seq: 1})
	checkAttr(t, a, ms(5), "ERROR:app:Exception on /api/products [GET]", want{session: 6, seq: 2})
	checkAttr(t, a, ms(5), `Started GET "/api/products?page=2" for 10.0.0.1 at 2024-05-01 10:00:00 +0000`, want{session: 6, seq: 2})
	checkAttr(t, a, ms(5), "ERROR:django.request:Internal Server Error: /api/cart", want{session: 5, seq: 1}) // the path alone
	checkAttr(t, a, ms(5), "ERROR:app:Exception on /api/log [POST]", want{})                                  // no session to give
	checkAttr(t, a, ms(5), "INFO:root:working", want{cands: []uint64{5, 6}})                                  // no name: the time alone
	// A line naming a request the proxy did not see in its time belongs to
	// none of those in flight: a health check sent to the backend directly.
	checkAttr(t, a, ms(5), `127.0.0.1 - - [01/May/2024 10:00:00] "GET /healthz HTTP/1.1" 200 -`, want{cands: []uint64{5, 6}})
	checkAttr(t, a, ms(5), "ERROR:app:Exception on /api/cart [POST]", want{cands: []uint64{5, 6}})
	// The same path from two sessions stays ambiguous.
	request{seq: 4, session: 7, method: "GET", path: "/api/cart", from: ms(3)}.run(a)
	checkAttr(t, a, ms(5), "ERROR:app:Exception on /api/cart [GET]", want{cands: []uint64{5, 7}})
	// A request seen without its method and path may be the one.
	b := NewAttributor(grace)
	request{seq: 1, session: 5, method: "GET", path: "/api/cart", from: ms(0)}.run(b)
	request{seq: 2, session: 6, from: ms(1)}.run(b)
	checkAttr(t, b, ms(5), "ERROR:app:Exception on /api/cart [GET]", want{cands: []uint64{5, 6}})
	// Before its start a request printed nothing, named or not.
	checkAttr(t, b, ms(0).Add(-time.Millisecond), "ERROR:app:Exception on /api/cart [GET]", want{})
}

// TestAttributeAccessLine: an access line is printed after the response; it
// names the method, path and status of a request that may have ended a
// moment before.
func TestAttributeAccessLine(t *testing.T) {
	line := func(method, path string, status int) string {
		return fmt.Sprintf(`127.0.0.1 - - [01/May/2024 10:00:00] "%s %s HTTP/1.1" %d -`, method, path, status)
	}
	a := NewAttributor(grace)
	request{seq: 1, session: 5, method: "GET", path: "/api/cart", from: ms(0), to: ms(10), status: 500}.run(a)
	request{seq: 2, session: 6, method: "GET", path: "/api/cart", from: ms(0), to: ms(12), status: 200}.run(a)
	checkAttr(t, a, ms(15), line("GET", "/api/cart", 500), want{session: 5, seq: 1}) // the status tells them apart
	checkAttr(t, a, ms(15), line("GET", "/api/cart", 200), want{session: 6, seq: 2})
	checkAttr(t, a, ms(15), line("GET", "/api/cart", 404), want{cands: []uint64{5, 6}}) // neither: none, with every candidate
	checkAttr(t, a, ms(500), line("GET", "/api/cart", 200), want{})                     // read after the grace: no candidate left
	// Read after the grace while another request to the path is in
	// flight: the line may be the finished one's, so the name picks none.
	request{seq: 4, session: 8, method: "GET", path: "/api/cart", from: ms(490)}.run(a)
	checkAttr(t, a, ms(500), line("GET", "/api/cart", 200), want{cands: []uint64{6, 8}})
	// A request still in flight may have sent its response already.
	request{seq: 3, session: 7, method: "GET", path: "/api/cart", from: ms(14)}.run(a)
	checkAttr(t, a, ms(20), line("GET", "/api/cart", 200), want{cands: []uint64{6, 7}})

	// The proxy gave up on a request (504); the backend prints its access
	// line much later. By then the request is no candidate: the line
	// names only the requests in its own time (invariant 2).
	b := NewAttributor(grace)
	request{seq: 1, session: 8, method: "GET", path: "/api/slow", from: ms(0), to: ms(100), status: 504, proxyError: "upstream sent no response headers within 0.1s"}.run(b)
	request{seq: 2, session: 9, method: "GET", path: "/api/slow", from: ms(3000), to: ms(3010), status: 200}.run(b)
	request{seq: 3, session: 9, method: "GET", path: "/api/other", from: ms(3000), to: ms(3010), status: 200}.run(b)
	checkAttr(t, b, ms(3015), line("GET", "/api/slow", 200), want{session: 9, seq: 2})
	checkAttr(t, b, ms(3015), line("GET", "/api/other", 200), want{session: 9, seq: 3})
	checkAttr(t, b, ms(2000), line("GET", "/api/slow", 200), want{})
}

func TestAttributeNeedsLiveTime(t *testing.T) {
	a := NewAttributor(grace)
	start(a, 1, 5, ms(0), "", "")
	at := a.attribute(&evidence{time: ms(10), live: false, text: []byte("from a tailed file")})
	if at.level != attributionNone {
		t.Fatalf("a file or ingest line's read time says nothing about when it was printed: %+v", at)
	}
	at = a.attribute(&evidence{time: ms(10), live: false, text: []byte("[openReplaySession.id=5] marked"), msgMarker: 5})
	if at.level != attributionExact {
		t.Fatalf("exact evidence holds for any stream: %+v", at)
	}
}

func TestAttributeHorizon(t *testing.T) {
	a := NewAttributor(grace)
	start(a, 1, 5, ms(0), "", "")
	finish(a, 1, 5, ms(0), ms(10))
	// Much later, request 2 finishes: request 1 is forgotten.
	late := ms(10).Add(windowRetention + time.Second)
	start(a, 2, 6, late, "", "")
	finish(a, 2, 6, late, late.Add(time.Millisecond))
	if a.done.len() != 1 {
		t.Fatalf("%d finished requests kept", a.done.len())
	}
	if at := attr(a, ms(5), "a line the worker reached very late"); at.level != attributionNone {
		t.Fatalf("a line older than what the attributor still knows must not be guessed: %+v", at)
	}
}

func TestAttributeMemoryIsBounded(t *testing.T) {
	a := NewAttributor(grace)
	for i := range uint64(windowCapacity + 100) {
		at := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		r := request{seq: i + 1, session: i%50 + 1, method: "GET", path: fmt.Sprintf("/orders/%d", i), from: at, to: at, status: 200}
		if i%100 == 0 {
			r.status, r.proxyError = 504, "upstream timeout"
		}
		a.RequestStarted(&proxy.RequestStart{Seq: r.seq, Start: at, Session: r.session, Method: []byte(r.method), Path: []byte(r.path),
			RequestID: []byte(fmt.Sprintf("req-%020d-x", i))})
		r.finish(a)
	}
	if a.done.len() > windowCapacity || len(a.inflight) != 0 {
		t.Fatalf("done %d inflight %d", a.done.len(), len(a.inflight))
	}
	if a.ids.len() > idCapacity || a.ids.order.len() > idCapacity {
		t.Fatalf("ids %d order %d", a.ids.len(), a.ids.order.len())
	}
	// Much later, everything known before is forgotten.
	late := a.latest.Add(idRetention + time.Second)
	request{seq: 1 << 40, session: 1, method: "GET", path: "/", from: late, to: late, status: 200}.run(a)
	if a.done.len() != 1 || a.ids.len() != 0 {
		t.Fatalf("after a while: done %d ids %d", a.done.len(), a.ids.len())
	}
}

// TestAttributeNamedAmongMany: a line naming a path picks its requests
// among many in flight, and none once they are over.
func TestAttributeNamedAmongMany(t *testing.T) {
	a := NewAttributor(grace)
	paths := []string{"/a", "/b", "/c", "/d", "/e"}
	for i := range 500 {
		request{seq: uint64(i + 1), session: uint64(i%len(paths) + 1), method: "GET", path: paths[i%len(paths)], from: ms(i)}.run(a)
	}
	access := func(p string) string {
		return fmt.Sprintf(`10.0.0.1 - - [01/May/2024 10:00:00] "GET %s HTTP/1.1" 200 -`, p)
	}
	for i, p := range paths {
		checkAttr(t, a, ms(500), access(p), want{session: uint64(i + 1)})
	}
	request{seq: 1000, session: 9, method: "GET", path: "/c", from: ms(600)}.run(a)
	checkAttr(t, a, ms(602), access("/c"), want{cands: []uint64{3, 9}})
	for i := range 500 {
		finish(a, uint64(i+1), uint64(i%len(paths)+1), ms(i), ms(700))
	}
	finish(a, 1000, 9, ms(600), ms(700))
	checkAttr(t, a, ms(700), access("/c"), want{cands: []uint64{3, 9}})
	checkAttr(t, a, ms(700).Add(grace+time.Millisecond), access("/c"), want{})
}

// TestAttributionPrecisionSequential: requests that do not overlap (gaps
// wider than the grace), lines printed inside them: every line is
// attributed, to the right session.
func TestAttributionPrecisionSequential(t *testing.T) {
	a := NewAttributor(grace)
	var wrong, right, total int
	at := t0
	for r := range 500 {
		seq, session := uint64(r+1), uint64(r%7+1)
		start(a, seq, session, at, "", "")
		for k := range 3 {
			total++
			got := attr(a, at.Add(time.Duration(k+1)*time.Millisecond), "work")
			switch {
			case got.session == session && got.seq == seq:
				right++
			case got.session != 0:
				wrong++
			}
		}
		end := at.Add(5 * time.Millisecond)
		finish(a, seq, session, at, end)
		at = end.Add(2*grace + time.Millisecond)
	}
	if wrong != 0 || right != total {
		t.Fatalf("%d wrong, %d right of %d", wrong, right, total)
	}
}

// TestAttributionPrecisionConcurrent drives the Attributor as the proxy and
// the worker do: several sessions' requests start and finish on their own
// goroutines (a few ms of work, then 25-45 ms until the session's next
// request), and a consumer goroutine attributes the lines as they come. The
// backend prints what a Flask app under werkzeug does:
//
//   - two lines while handling each request, one in four with the
//     request's id (the "with request id" and "by time alone" columns);
//   - for one request in eight, which fails, Flask's "Exception on /path
//     [GET]" (a traceback's first line: "naming the request");
//   - after each response, werkzeug's access line `"GET /path HTTP/1.1"
//     200 -`, sometimes read before the proxy has seen the end ("access
//     lines");
//
// sessions share four paths; one request in ten has no session, one in
// five follows a browser's CORS preflight (sessionless, with its own
// access line), and a health check that does not go through the proxy
// prints its access line every 20 ms. Every line carries, for the test
// only, the truth (session and request).
//
// No line may be attributed to a wrong session or a wrong request; lines
// with their request's id must all be attributed; with one session every
// line of a session's request but the access lines must be. The recall of
// the rest under concurrency is logged; docs/document-format.md reports it.
func TestAttributionPrecisionConcurrent(t *testing.T) {
	for _, g := range []time.Duration{testOptions().AttributionGrace, 5 * time.Millisecond, time.Millisecond} {
		for _, tc := range []struct{ sessions, requests int }{{1, 30}, {4, 30}, {16, 20}, {64, 12}} {
			t.Run(fmt.Sprintf("grace=%v/sessions=%d", g, tc.sessions), func(t *testing.T) {
				r := runConcurrentSessions(t, g, tc.sessions, tc.requests)
				t.Logf("grace %v, %d sessions: %d lines, %d wrong; with request id %s; by time alone %s; naming the request %s; access lines %s",
					g, tc.sessions, r.lines, r.wrong, r.id, r.timing, r.named, r.access)
				if r.wrong != 0 {
					t.Fatalf("%d lines attributed to a wrong session or request", r.wrong)
				}
				if r.id.right != r.id.lines {
					t.Fatalf("%d of %d lines with their request id attributed", r.id.right, r.id.lines)
				}
				// Access lines are not in this check: one may lag by up
				// to accessLineDelay, so a request without a session to
				// the same path within that time makes it ambiguous.
				if tc.sessions == 1 && (r.timing.right != r.timing.lines || r.named.right != r.named.lines) {
					t.Fatalf("requests that do not overlap: by time alone %s, naming the request %s attributed", r.timing, r.named)
				}
				if r.named.lines == 0 || r.access.lines == 0 {
					t.Fatalf("the simulation printed %d lines naming their request and %d access lines", r.named.lines, r.access.lines)
				}
			})
		}
	}
}

type recall struct{ lines, right int }

func (r recall) String() string {
	return fmt.Sprintf("%d/%d (%.0f%%)", r.right, r.lines, 100*float64(r.right)/float64(max(r.lines, 1)))
}

type precisionResult struct {
	lines, wrong              int
	id, timing, named, access recall
}

// Kinds of simulated lines.
const (
	lineTiming = iota
	lineID
	lineNamed
	lineAccess
)

func runConcurrentSessions(t *testing.T, grace time.Duration, sessions, requestsEach int) precisionResult {
	a := NewAttributor(grace)
	type printed struct {
		at      time.Time
		text    string
		session uint64 // truth; 0: a request without a session, or none at all
		seq     uint64
		kind    int
	}
	paths := []string{"/api/cart", "/api/products", "/api/user", "/api/endpoint"}
	accessLine := func(method, path string, status int) string {
		return fmt.Sprintf(`INFO:werkzeug:127.0.0.1 - - [01/May/2024 10:00:00] "%s %s HTTP/1.1" %d -`, method, path, status)
	}
	lines := make(chan printed, 1024)
	var seqs atomic.Uint64
	var wg sync.WaitGroup
	for w := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(w%7) * 5 * time.Millisecond) // sessions do not start in step
			for r := range requestsEach {
				path := paths[(r+w)%len(paths)]
				if r%5 == 0 {
					// The browser's preflight, answered without app code.
					seq, begin := seqs.Add(1), time.Now()
					a.RequestStarted(&proxy.RequestStart{Seq: seq, Start: begin, Method: []byte("OPTIONS"), Path: []byte(path), Preflight: true})
					time.Sleep(300 * time.Microsecond)
					ev := accessEvent(seq, 0, begin, time.Since(begin), "OPTIONS", path, 200)
					a.RequestFinished(ev)
					lines <- printed{time.Now(), accessLine("OPTIONS", path, 200), 0, seq, lineAccess}
					time.Sleep(200 * time.Microsecond)
				}
				seq := seqs.Add(1)
				session := uint64(1_000_000 + w)
				if r%10 == 9 {
					session = 0 // some requests carry no session at all
				}
				rid := fmt.Sprintf("rq%08dx%08d", w, r)
				begin := time.Now()
				a.RequestStarted(&proxy.RequestStart{Seq: seq, Start: begin, Session: session,
					Method: []byte("GET"), Path: []byte(path), RequestID: []byte(rid)})
				for k := range 2 {
					time.Sleep(time.Millisecond) // the backend works, then prints
					text, kind := fmt.Sprintf("INFO:app:handling step %d", k), lineTiming
					if r%4 == 0 && k == 1 {
						text, kind = text+" request_id="+rid, lineID
					}
					lines <- printed{time.Now(), text, session, seq, kind}
				}
				status := 200
				if r%8 == 3 {
					status = 500
					lines <- printed{time.Now(), "ERROR:app:Exception on " + path + " [GET]", session, seq, lineNamed}
				}
				access := printed{text: accessLine("GET", path, status), session: session, seq: seq, kind: lineAccess}
				end := func() {
					ev := accessEvent(seq, session, begin, time.Since(begin), "GET", path, status)
					a.RequestFinished(ev)
				}
				if r%3 == 0 { // the line is read before the proxy records the end
					access.at = time.Now()
					lines <- access
					end()
				} else {
					end()
					time.Sleep(time.Duration(r%4) * 300 * time.Microsecond)
					access.at = time.Now()
					lines <- access
				}
				time.Sleep(time.Duration(25+(r*7+w*3)%21) * time.Millisecond) // until the session's next request
			}
		}()
	}
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	go func() { // a health check sent to the backend directly, not through the proxy
		defer close(probeDone)
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(20 * time.Millisecond):
				lines <- printed{time.Now(), accessLine("GET", "/healthz", 200), 0, 0, lineAccess}
			}
		}
	}()
	go func() { wg.Wait(); close(stopProbe); <-probeDone; close(lines) }()
	var res precisionResult
	for l := range lines {
		res.lines++
		at := attr(a, l.at, l.text)
		if at.session != 0 && (at.session != l.session || at.seq != 0 && at.seq != l.seq) {
			res.wrong++
			t.Errorf("%q of session %d (request %d) attributed to session %d request %d by %s", l.text, l.session, l.seq, at.session, at.seq, at.source)
		}
		if l.session == 0 {
			continue
		}
		c := [...]*recall{lineTiming: &res.timing, lineID: &res.id, lineNamed: &res.named, lineAccess: &res.access}[l.kind]
		c.lines++
		if at.session == l.session {
			c.right++
		}
	}
	return res
}

// TestAttributeHook (invariant 6): a line a runtime hook marked goes to the
// request its span names, whatever else was in flight and whatever its text
// says; derived output only while its request is a candidate.
func TestAttributeHook(t *testing.T) {
	a := newAttributor(Options{AttributionGrace: grace, Hooks: true})
	span := func(n byte) [8]byte { return [8]byte{0xa0, 1, 2, 3, 4, 5, 6, n} }
	a.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 5, SpanID: span(1), Method: []byte("GET"), Path: []byte("/a")})
	a.RequestStarted(&proxy.RequestStart{Seq: 2, Start: ms(0), Session: 6, SpanID: span(2), Method: []byte("GET"), Path: []byte("/b")})
	a.RequestStarted(&proxy.RequestStart{Seq: 3, Start: ms(0), Session: 0, SpanID: span(3)})
	ev := accessEvent(2, 6, ms(0), 10*time.Millisecond, "GET", "/b", 200)
	ev.SpanID = span(2)
	a.RequestFinished(ev)
	for _, tc := range []struct {
		name    string
		at      time.Time
		text    string
		mark    hooks.Mark
		session uint64
		seq     uint64
	}{
		{"serving thread, three in flight", ms(5), "INFO:app:working", hooks.Mark{Span: span(1)}, 5, 1},
		{"its text names another request", ms(5), `127.0.0.1 - - [01/May/2024 10:00:00] "GET /b HTTP/1.1" 200 -`, hooks.Mark{Span: span(1)}, 5, 1},
		{"its text carries another session's marker", ms(5), "INFO:app:[openReplaySession.id=6] x", hooks.Mark{Span: span(1)}, 5, 1},
		{"long after its request ended", ms(5000), "INFO:app:late", hooks.Mark{Span: span(2)}, 6, 2},
		{"derived, while its request runs", ms(5), "INFO:app:pool", hooks.Mark{Span: span(1), Derived: true}, 5, 1},
		{"derived, after its request ended", ms(5000), "INFO:app:pool", hooks.Mark{Span: span(2), Derived: true}, 0, 0},
		{"a request without a session", ms(5), "INFO:app:x", hooks.Mark{Span: span(3)}, 0, 0},
		{"a span the proxy never saw", ms(5), "INFO:app:x", hooks.Mark{Span: span(9)}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lp lineParser
			p := lp.parse([]byte(tc.text))
			at := a.attribute(&evidence{time: tc.at, live: true, text: []byte(tc.text), hook: tc.mark,
				request: findRequest(p.message), fieldSession: p.fieldSession, msgMarker: p.msgMarker})
			if at.session != tc.session || at.seq != tc.seq || tc.session != 0 && at.source != "hook" {
				t.Errorf("got session %d seq %d by %q, want %d %d by hook", at.session, at.seq, at.source, tc.session, tc.seq)
			}
		})
	}
	// Without Options.Hooks, spans are not kept: a mark finds nothing.
	b := newAttributor(Options{AttributionGrace: grace})
	b.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 5, SpanID: span(1)})
	if at := b.attribute(&evidence{time: ms(1), live: true, hook: hooks.Mark{Span: span(1)}}); at.session != 0 || b.ids.len() != 0 {
		t.Errorf("hooks off: %+v, %d ids", at, b.ids.len())
	}
}
