package enrich

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// requestLoad drives an Attributor as the proxy does: each next starts a
// request with its own request id and trace id, step after the one before,
// and finishes the one started inFlight requests before.
type requestLoad struct {
	a    *Attributor
	ids  [][]byte
	step time.Duration
	rs   proxy.RequestStart
	evs  [8]*proxy.AccessEvent // inFlight
	seq  uint64
}

// newRequestLoad cycles through n request ids: more than live at once, so
// that every request brings a new one.
func newRequestLoad(a *Attributor, n int, step time.Duration) *requestLoad {
	l := &requestLoad{a: a, ids: make([][]byte, n), step: step,
		rs: proxy.RequestStart{Session: 42, Source: proxy.SourceHeader, Method: []byte("GET"), Path: []byte("/api/cart/items")}}
	for i := range l.ids {
		l.ids[i] = fmt.Appendf(nil, "%08x-7d9b-4c3e-8a51-6b2d9f0e4c17", i)
	}
	for i := range l.evs {
		l.evs[i] = proxy.AcquireEvent()
	}
	return l
}

func (l *requestLoad) next() {
	l.seq++
	rs := &l.rs
	rs.Seq, rs.Start = l.seq, t0.Add(time.Duration(l.seq)*l.step)
	rs.RequestID = l.ids[l.seq%uint64(len(l.ids))]
	binary.LittleEndian.PutUint64(rs.TraceID[:], l.seq)
	l.a.RequestStarted(rs)
	ev := l.evs[l.seq%uint64(len(l.evs))]
	if ev.Seq != 0 {
		l.a.finish(ev)
	}
	ev.Seq, ev.Start, ev.Duration, ev.Session = l.seq, rs.Start, l.step/2, rs.Session
	ev.Method, ev.Path, ev.RequestID, ev.TraceID = rs.Method, rs.Path, rs.RequestID, rs.TraceID
}

// finishWithIDs ends a request as the proxy does, with its ids.
func finishWithIDs(a *Attributor, seq, session uint64, from, to time.Time, reqID, trace string) {
	ev := proxy.AcquireEvent()
	ev.Seq, ev.Session, ev.Start, ev.Duration = seq, session, from, to.Sub(from)
	ev.RequestID = append(ev.RequestID, reqID...)
	hex.Decode(ev.TraceID[:], []byte(trace))
	a.RequestFinished(ev)
}

// pushed attributes a pushed line (no live time), as the assembler does.
func pushed(a *Attributor, at time.Time, text string) attribution {
	return a.attribute(&evidence{time: at, text: []byte(text)})
}

// An Attributor for pushed lines only keeps no books until the first line;
// from then on it knows the requests, those in flight then included.
func TestAttributorIdleUntilFirstLine(t *testing.T) {
	a := newAttributor(Options{AttributionGrace: grace, PushedLinesOnly: true})
	const ended, inFlight, later = "01HWX3K9Q7ZP4M2B8N6C5D1E0F", "3f1c2b9e-8d4a-4c51-9a7e-2b6f0d1e4a77", "req-after-the-first-line-0001"
	const inFlightTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	start(a, 1, 5, ms(0), ended, "")
	finishWithIDs(a, 1, 5, ms(0), ms(10), ended, "")
	start(a, 2, 6, ms(20), inFlight, inFlightTrace)
	if len(a.inflight) != 0 || a.done.len() != 0 || a.ids.len() != 0 || !a.latest.IsZero() {
		t.Fatalf("before any line: %d in flight, %d done, %d ids, clock %v", len(a.inflight), a.done.len(), a.ids.len(), a.latest)
	}

	a.noteLine()
	finishWithIDs(a, 2, 6, ms(20), ms(40), inFlight, inFlightTrace)
	start(a, 3, 7, ms(50), later, "")
	finishWithIDs(a, 3, 7, ms(50), ms(55), later, "")
	for _, tc := range []struct {
		name          string
		text          string
		session, seq  uint64
		level, source string
	}{
		{"a request that ended before the first line is not known", "failed " + ended, 0, 0, "none", ""},
		{"a request in flight at the first line is known from its end", "failed " + inFlight, 6, 2, "exact", "request-id"},
		{"by its trace id too", "traceparent=00-" + inFlightTrace + "-00f067aa0ba902b7-01", 6, 2, "exact", "trace-id"},
		{"a request after the first line", "failed " + later, 7, 3, "exact", "request-id"},
	} {
		at := pushed(a, ms(60), tc.text)
		if at.session != tc.session || at.seq != tc.seq || at.level.String() != tc.level || at.source != tc.source {
			t.Errorf("%s: got %s session %d seq %d source %q", tc.name, at.level, at.session, at.seq, at.source)
		}
	}
}

// Activated by a line, the Attributor never knew the requests in flight
// then: a line read beside one of them must not go to another by time.
func TestAttributorActivatedByALineJudgesNoWindow(t *testing.T) {
	a := newAttributor(Options{AttributionGrace: grace, PushedLinesOnly: true})
	start(a, 1, 5, ms(0), "", "") // not seen
	a.noteLine()
	start(a, 2, 6, ms(1), "", "")
	if at := attr(a, ms(2), "work"); at.level != attributionNone || at.session != 0 {
		t.Errorf("live line beside a request the Attributor did not see: %+v", at)
	}
}

// Without PushedLinesOnly (run, --tail) requests are tracked from the
// start, before any line.
func TestAttributorCapturingTracksFromStart(t *testing.T) {
	a := newAttributor(Options{AttributionGrace: grace})
	const rid = "01HWX3K9Q7ZP4M2B8N6C5D1E0F"
	start(a, 1, 5, ms(0), rid, "")
	if at := attr(a, ms(1), "work"); at.level != attributionWindow || at.session != 5 || at.seq != 1 {
		t.Errorf("window, before any line was noted: %+v", at)
	}
	if at := pushed(a, ms(1), "failed "+rid); at.level != attributionExact || at.session != 5 || at.seq != 1 {
		t.Errorf("request id, before any line was noted: %+v", at)
	}
}

// The first line may come while the proxy's goroutines are busy (for -race):
// once it has, every request is tracked.
func TestAttributorActivationWhileBusy(t *testing.T) {
	a := newAttributor(Options{AttributionGrace: grace, PushedLinesOnly: true})
	var wg sync.WaitGroup
	for w := range uint64(4) {
		wg.Go(func() {
			for i := range uint64(200) {
				seq := w*1000 + i + 1
				at := ms(int(i))
				start(a, seq, w+1, at, fmt.Sprintf("req-%04d-worker-%d-abcdef", seq, w), "")
				finishWithIDs(a, seq, w+1, at, at.Add(time.Millisecond), fmt.Sprintf("req-%04d-worker-%d-abcdef", seq, w), "")
			}
		})
	}
	a.noteLine()
	wg.Wait()
	start(a, 9999, 9, ms(300), "req-9999-after-everything-0", "")
	if at := pushed(a, ms(301), "failed req-9999-after-everything-0"); at.session != 9 || at.seq != 9999 {
		t.Errorf("after the first line: %+v", at)
	}
}

// Once the tables are at their size, the proxy's calls allocate nothing.
func TestAttributorRequestAllocs(t *testing.T) {
	for _, o := range []Options{{AttributionGrace: grace}, {AttributionGrace: grace, PushedLinesOnly: true}} {
		// A second per request: ids live 120 requests, finished
		// requests 30; 512 ids cycle without a repeat while alive.
		l := newRequestLoad(newAttributor(o), 512, time.Second)
		for range 1000 {
			l.next()
		}
		if n := testing.AllocsPerRun(1000, l.next); n != 0 {
			t.Errorf("PushedLinesOnly %v: %v allocations per request", o.PushedLinesOnly, n)
		}
	}
}

// TestIDTable checks the id table against a model through additions,
// renewals and expiry in random order, with ids whose hashes collide: an id
// whose hash is taken is not registered, and no id ever finds another's
// entry.
func TestIDTable(t *testing.T) {
	type key struct {
		kind idKind
		id   string
	}
	type live struct {
		session uint64
		expires time.Time
		h       idHandle
	}
	hashOf := func(k key) uint64 {
		f := fnv.New32a()
		f.Write([]byte(k.id))
		return uint64(f.Sum32() % 128)
	}
	tab := newIDTable()
	model := map[key]live{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var collided int
	for step := range 20000 {
		now = now.Add(time.Millisecond)
		tab.expire(now)
		k := key{idKind(1 + rng.IntN(2)), fmt.Sprintf("id-%d", rng.IntN(300))}
		expires := now.Add(time.Duration(1+rng.IntN(60)) * time.Millisecond)
		if m, ok := model[k]; ok && tab.renew(m.h, now, expires) {
			m.expires = later(m.expires, expires)
			model[k] = m
		} else {
			session := uint64(1 + rng.IntN(1000))
			if h := tab.add(k.kind, hashOf(k), []byte(k.id), idUse{session: session}, expires); h != (idHandle{}) {
				model[k] = live{session, expires, h}
			} else {
				delete(model, k)
				collided++
			}
		}
		for k, m := range model {
			e := tab.lookup(k.kind, hashOf(k), []byte(k.id))
			switch {
			case e == nil && !m.expires.Before(now):
				t.Fatalf("step %d: %v lost before it expired", step, k)
			case e == nil:
				delete(model, k) // expired and dropped
			case e.session != m.session || e.expires != m.expires:
				t.Fatalf("step %d: %v has session %d expiring %v, want %d %v", step, k, e.session, e.expires, m.session, m.expires)
			}
		}
		if tab.len() != len(model) {
			t.Fatalf("step %d: %d ids in the table, %d known", step, tab.len(), len(model))
		}
		if k := (key{idRequest, fmt.Sprintf("id-%d", rng.IntN(600))}); tab.lookup(k.kind, hashOf(k), []byte(k.id)) != nil {
			if _, ok := model[k]; !ok {
				t.Fatalf("step %d: %v found, not registered", step, k)
			}
		}
	}
	if collided == 0 {
		t.Fatal("no id collided: the test tests nothing")
	}
}

// A full table makes room by dropping the id made first, unless its request
// renewed it since (the request ended later): as if queued at its renewal.
func TestIDTableFull(t *testing.T) {
	tab := newIDTable()
	tab.order = newRing[idRef](3)
	add := func(id string) idHandle {
		return tab.add(idRequest, uint64(len(tab.entries)), []byte(id), idUse{session: 1, seq: 1, start: ms(0)}, ms(100))
	}
	has := func(id string) bool {
		for i := range tab.entries {
			if e := &tab.entries[i]; string(e.id) == id && tab.lookup(idRequest, e.hash, e.id) == e {
				return true
			}
		}
		return false
	}
	a := add("request-a")
	add("request-b")
	add("request-c")
	tab.renew(a, ms(150), ms(200))
	add("request-d")
	if !has("request-a") || has("request-b") || !has("request-c") || !has("request-d") || tab.len() != 3 {
		t.Errorf("after a fourth id: a %v b %v c %v d %v, %d ids", has("request-a"), has("request-b"), has("request-c"), has("request-d"), tab.len())
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// An enricher for pushed lines only tracks requests from its first line on:
// a pushed line naming a request from before is not attributed by its id,
// one naming a request from after is.
func TestEnricherPushedLinesOnly(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.PushedLinesOnly = true
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	const before, after = "01HWX3K9Q7ZP4M2B8N6C5D1E0F", "3f1c2b9e-8d4a-4c51-9a7e-2b6f0d1e4a77"
	request := func(seq, session uint64, id string) {
		begin := time.Now()
		p.RequestStarted(&proxy.RequestStart{Seq: seq, Start: begin, Session: session, Source: proxy.SourceHeader, RequestID: []byte(id)})
		ev := proxy.AcquireEvent()
		ev.Seq, ev.Start, ev.Duration, ev.Status, ev.Session, ev.Source = seq, begin, time.Millisecond, 200, session, proxy.SourceHeader
		ev.Method, ev.Path, ev.RequestID = append(ev.Method, "GET"...), append(ev.Path, "/x"...), append(ev.RequestID, id...)
		p.RequestFinished(ev)
	}
	push := func(text string) {
		p.Line(&capture.Line{Time: time.Now(), Stream: capture.Ingest, Origin: "10.0.0.1:5000", Text: []byte(text)})
	}
	request(1, 5, before)
	if p.attr.ids.len() != 0 || len(p.attr.inflight) != 0 || p.attr.done.len() != 0 {
		t.Fatal("a request was tracked before any line")
	}
	push(`{"level":"info","msg":"first push"}`)
	request(2, 6, after)
	push(`{"level":"error","msg":"failed","request_id":"` + before + `"}`)
	push(`{"level":"error","msg":"failed","request_id":"` + after + `"}`)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sessions := map[string]any{}
	for _, d := range rec.decoded(t) {
		if field(d, "event.dataset") != "replaylink.access" {
			sessions[fmt.Sprint(field(d, "http.request.id"))] = field(d, "openReplaySession.id")
		}
	}
	if sessions[before] != nil || sessions[after] != "6" {
		t.Errorf("sessions of the pushed lines by the request id they name: %v", sessions)
	}
}
