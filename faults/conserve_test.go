package faults

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conservation property: every request whose complete response reached
// the client has exactly one access document; a request that got no
// response (replaylink killed mid-request) has at most one; nothing else is
// in the index. The liveness property: once faults stop and the backlog is
// in, fresh requests are indexed within livenessBound.

// livenessBound is how soon fresh requests must be searchable once faults
// are over: the flush interval the tests use (200ms), a bulk request, a
// refresh, with ample room for a loaded 2-core machine.
const livenessBound = 10 * time.Second

// checkConservation waits up to timeout for every answered request of l to
// be indexed in x, then checks exactly-once, sessions and liveness.
func checkConservation(t testing.TB, x *esIndex, l *load, r *report, timeout time.Duration) {
	t.Helper()
	answered, sent := l.answeredIDs(), l.sentIDs()
	start := time.Now()
	for time.Since(start) <= timeout {
		if c := x.count(); c >= len(answered) {
			have := map[string]bool{}
			for _, d := range x.docs() {
				have[d.Doc.HTTP.Request.ID] = true
			}
			missing := 0
			for id := range answered {
				if !have[id] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.add("catch_up_s", seconds(time.Since(start)))
	// Let retries still in flight land, so a duplicate they make is seen.
	time.Sleep(1500 * time.Millisecond)
	docs := x.docs()
	checkExactlyOnce(t, docs, l, answered, sent, r)

	// Liveness: fresh requests, searchable within livenessBound.
	fresh := l.send(20)
	want := len(docs)
	for _, i := range fresh {
		if !l.isAbsent(l.requestID(i)) {
			want++
		}
	}
	took, ok := x.waitCount(want, 60*time.Second)
	r.add("liveness_s", seconds(took))
	if !ok || took > livenessBound {
		t.Errorf("liveness: %d fresh requests were searchable after %v (bound %v; count %d, want %d)",
			len(fresh), took.Round(time.Millisecond), livenessBound, x.count(), want)
	}
}

// checkExactlyOnce checks the documents against the requests.
func checkExactlyOnce(t testing.TB, docs []accessDoc, l *load, answered, sent map[string]bool, r *report) {
	t.Helper()
	perID := map[string]int{}
	foreign, badSession, others := 0, 0, 0
	for _, d := range docs {
		id := d.Doc.HTTP.Request.ID
		i, ok := l.index(id)
		if d.Doc.Event.Dataset != "replaylink.access" || !ok && !strings.HasPrefix(id, l.prefix+"-") {
			others++ // backend output, requests the test made itself
			continue
		}
		if !ok || !sent[id] {
			foreign++
			if foreign <= 3 {
				t.Errorf("document for a request that was never sent: %s", d.Source)
			}
			continue
		}
		perID[id]++
		if l.isAbsent(id) {
			foreign++
			if foreign <= 3 {
				t.Errorf("request %s should have been refused, yet it is indexed: %s", id, d.Source)
			}
		}
		if want := strconv.FormatUint(l.session(i), 10); d.Doc.OpenReplaySession.ID != want {
			badSession++
			if badSession <= 3 {
				t.Errorf("request %s: session %q, want %s", id, d.Doc.OpenReplaySession.ID, want)
			}
		}
	}
	dups, missing, extra := 0, 0, 0
	for id, n := range perID {
		if n > 1 {
			dups += n - 1
			if dups <= 3 {
				t.Errorf("request %s has %d documents", id, n)
			}
		}
		if !answered[id] && !l.isAbsent(id) {
			extra++ // sent, no response seen, but indexed: allowed once
		}
	}
	for id := range answered {
		if perID[id] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("request %s was answered but has no document", id)
			}
		}
	}
	r.add("answered", len(answered))
	if others > 0 {
		r.add("other_docs", others)
	}
	r.add("indexed", len(docs)-others)
	r.add("missing", missing)
	r.add("duplicates", dups)
	if extra > 0 {
		r.add("unanswered_indexed", extra)
	}
	if missing > 0 || dups > 0 || foreign > 0 || badSession > 0 {
		t.Errorf("conservation: %d answered requests, %d access documents: %d missing, %d duplicates, %d foreign, %d with a wrong session",
			len(answered), len(docs)-others, missing, dups, foreign, badSession)
	}
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) }
