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

func attr(a *Attributor, at time.Time, text string) attribution {
	return a.attribute(&evidence{time: at, live: true, text: []byte(text)})
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
		{name: "the line's own marker", text: "INFO:root:[openReplaySession.id=99] hi", level: attributionExact, session: 99, source: "marker"},
		{name: "marker and request id agree", text: "[openReplaySession.id=5] " + rid5, level: attributionExact, session: 5, source: "request-id", seq: 1},
		{name: "marker and request id disagree", text: "[openReplaySession.id=6] " + rid5, cands: []uint64{5, 6}},
		{name: "two request ids of two sessions", text: rid5 + " then " + rid6, cands: []uint64{5, 6}},
		{name: "the id of a request without a session", text: "req-without-session-0123456789 failed"},
		{name: "a short id is not looked for", text: "id 12345 failed", cands: []uint64{5, 6, 7, 8}},
		{name: "an id glued into a longer word does not match", text: "x" + rid5, cands: []uint64{5, 6, 7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			ev.time, ev.live, ev.text = ms(10), true, []byte(tc.text)
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
	if len(a.byReqID) != 0 {
		t.Errorf("%d request ids kept", len(a.byReqID))
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

func TestAttributeNeedsLiveTime(t *testing.T) {
	a := NewAttributor(grace)
	start(a, 1, 5, ms(0), "", "")
	at := a.attribute(&evidence{time: ms(10), live: false, text: []byte("from a tailed file")})
	if at.level != attributionNone {
		t.Fatalf("a file or ingest line's read time says nothing about when it was printed: %+v", at)
	}
	at = a.attribute(&evidence{time: ms(10), live: false, text: []byte("[openReplaySession.id=5] marked")})
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
		at := ms(int(i))
		start(a, i+1, i%50+1, at, fmt.Sprintf("req-%020d-x", i), "")
		finish(a, i+1, i%50+1, at, at)
	}
	if a.done.len() > windowCapacity || len(a.inflight) != 0 {
		t.Fatalf("done %d inflight %d", a.done.len(), len(a.inflight))
	}
	if len(a.byReqID) > idCapacity || a.idOrder.len() > idCapacity {
		t.Fatalf("ids %d order %d", len(a.byReqID), a.idOrder.len())
	}
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
// request), the backend prints two lines while handling each (every line
// carries, for the test only, the truth: request and session; one in four
// also the request's id), and a consumer goroutine attributes the lines as
// they come. No line may be attributed to a wrong session; lines with their
// request's id must all be attributed; with one session (no overlap) every
// line must be. The recall of window attribution under concurrency is
// logged; docs/document-format.md reports it.
func TestAttributionPrecisionConcurrent(t *testing.T) {
	for _, g := range []time.Duration{DefaultAttributionGrace, 5 * time.Millisecond} {
		for _, tc := range []struct{ sessions, requests int }{{1, 30}, {4, 30}, {16, 20}, {64, 12}} {
			t.Run(fmt.Sprintf("grace=%v/sessions=%d", g, tc.sessions), func(t *testing.T) {
				r := runConcurrentSessions(t, g, tc.sessions, tc.requests)
				t.Logf("grace %v, %d concurrent sessions: %d lines, %d wrong; with request id %d/%d attributed; by window %d/%d (recall %.0f%%)",
					g, tc.sessions, r.lines, r.wrong, r.idRight, r.idLines, r.windowRight, r.windowLines, 100*float64(r.windowRight)/float64(max(r.windowLines, 1)))
				if r.wrong != 0 {
					t.Fatalf("%d lines attributed to a wrong session", r.wrong)
				}
				if r.idRight != r.idLines {
					t.Fatalf("%d of %d lines with their request id attributed", r.idRight, r.idLines)
				}
				if tc.sessions == 1 && r.windowRight != r.windowLines {
					t.Fatalf("requests that do not overlap: %d of %d lines attributed", r.windowRight, r.windowLines)
				}
			})
		}
	}
}

type precisionResult struct {
	lines, wrong                               int
	idLines, idRight, windowLines, windowRight int
}

func runConcurrentSessions(t *testing.T, grace time.Duration, sessions, requestsEach int) precisionResult {
	a := NewAttributor(grace)
	type printed struct {
		at      time.Time
		text    string
		session uint64 // truth; 0: a request without a session
		seq     uint64
		withID  bool
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
				seq := seqs.Add(1)
				session := uint64(1_000_000 + w)
				if r%10 == 9 {
					session = 0 // some requests carry no session at all
				}
				rid := fmt.Sprintf("rq%08dx%08d", w, r)
				begin := time.Now()
				a.RequestStarted(&proxy.RequestStart{Seq: seq, Start: begin, Session: session, RequestID: []byte(rid)})
				for k := range 2 {
					time.Sleep(time.Millisecond) // the backend works, then prints
					text := fmt.Sprintf("handling step %d", k)
					withID := r%4 == 0 && k == 1
					if withID {
						text += " request_id=" + rid
					}
					lines <- printed{time.Now(), text, session, seq, withID}
				}
				ev := proxy.AcquireEvent()
				ev.Seq, ev.Session, ev.Start, ev.Duration = seq, session, begin, time.Since(begin)
				a.RequestFinished(ev)
				time.Sleep(time.Duration(25+(r*7+w*3)%21) * time.Millisecond) // until the session's next request
			}
		}()
	}
	go func() { wg.Wait(); close(lines) }()
	var res precisionResult
	for l := range lines {
		res.lines++
		at := attr(a, l.at, l.text)
		if at.session != 0 && at.session != l.session {
			res.wrong++
			t.Errorf("line of session %d (request %d) attributed to %d by %s", l.session, l.seq, at.session, at.source)
		}
		if l.session == 0 {
			continue
		}
		right := at.session == l.session
		if l.withID {
			res.idLines++
			if right {
				res.idRight++
			}
		} else {
			res.windowLines++
			if right {
				res.windowRight++
			}
		}
	}
	return res
}
