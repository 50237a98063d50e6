package enrich

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// roundRecorder is a RoundPublisher that keeps the size of every Round and
// refuses the documents whose _id is in refuse.
type roundRecorder struct {
	recorder
	mu     sync.Mutex
	sizes  []int
	refuse map[string]bool
	handed int
}

func (r *roundRecorder) PublishRound(rd *Round) (refused int, err error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, rd.Len())
	r.handed += rd.Len()
	r.mu.Unlock()
	for i := range rd.Len() {
		id, source, replace := rd.Doc(i)
		if r.refuse[string(id)] {
			refused++
			if err == nil {
				err = fmt.Errorf("refused %s", id)
			}
			continue
		}
		if replace {
			r.Replace(id, source)
		} else {
			r.Publish(id, source)
		}
	}
	return refused, err
}

// TestEnricherPublishesInRounds: events queued while the worker is busy go
// to the publisher together, in order, and each document once.
func TestEnricherPublishesInRounds(t *testing.T) {
	rec := &roundRecorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.QueueSize = 4096
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Queued before the worker starts: its first round takes them all.
	const n = 1500
	for i := range n {
		p.RequestFinished(accessEvent(uint64(i+1), 7, t0, time.Millisecond, "GET", fmt.Sprintf("/item/%d", i), 200))
	}
	p.Start()
	// And one after it went idle: a wake, not a wait for the ticker.
	deadline := time.Now().Add(5 * time.Second)
	for rec.count() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.RequestFinished(accessEvent(n+1, 7, t0, time.Millisecond, "GET", "/last", 200))
	for rec.count() < n+1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	docs := rec.decoded(t)
	if len(docs) != n+1 || rec.handed != n+1 {
		t.Fatalf("%d documents (%d in Rounds), want %d", len(docs), rec.handed, n+1)
	}
	for i, d := range docs[:n] {
		// (Only the first info documents of a session carry the marker.)
		if want := fmt.Sprintf("GET /item/%d -> 200 (1.0 ms)", i); !strings.HasSuffix(d["message"].(string), want) {
			t.Fatalf("document %d: %q, want %q (order)", i, d["message"], want)
		}
	}
	// 1500 queued events: three full Rounds of maxRoundDocs and the rest.
	if len(rec.sizes) < 4 || rec.sizes[0] != maxRoundDocs || rec.sizes[1] != maxRoundDocs {
		t.Errorf("Round sizes %v: want the queued events in Rounds of %d", rec.sizes, maxRoundDocs)
	}
	if last := rec.sizes[len(rec.sizes)-1]; last != 1 {
		t.Errorf("last Round of %d: the event after the idle wake should go alone", last)
	}
}

func (r *roundRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handed
}

// TestRefusedDocumentsOfARoundAreCounted: a publisher refusing part of a
// Round costs those documents only, each counted.
func TestRefusedDocumentsOfARoundAreCounted(t *testing.T) {
	rec := &roundRecorder{refuse: map[string]bool{"test-2": true, "test-4": true}}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	before := publishErrors.Get()
	for i := range 5 {
		a.assembler.addEvent(accessEvent(uint64(i+1), 0, t0, time.Millisecond, "GET", "/", 200), t0)
	}
	a.commit()
	if got := publishErrors.Get() - before; got != 2 {
		t.Errorf("publish errors +%d, want 2", got)
	}
	if got := len(rec.decoded(t)); got != 3 || rec.sizes[0] != 5 {
		t.Errorf("kept %d of Rounds %v, want 3 of one Round of 5", got, rec.sizes)
	}
}

// TestRoundFallsBackToPublishAndReplace: a Publisher without PublishRound
// gets the Round's documents one call each, in order, refusals counted.
func TestRoundFallsBackToPublishAndReplace(t *testing.T) {
	var rd Round
	var d document
	d.message = []byte("one")
	rd.add([]byte("id-1"), false, &d)
	d.message = []byte("two")
	rd.add([]byte("id-1"), true, &d)
	calls := 0
	refused, err := rd.publish(publisherFunc(func() error {
		calls++
		if calls == 2 {
			return errors.New("spool full")
		}
		return nil
	}))
	if calls != 2 || refused != 1 || err == nil || err.Error() != "spool full" {
		t.Fatalf("calls %d, refused %d, err %v", calls, refused, err)
	}
	id, src, replace := rd.Doc(1)
	if string(id) != "id-1" || !replace || len(src) == 0 || src[0] != '{' {
		t.Errorf("Doc(1) = %q, %q, %v", id, src, replace)
	}
}

// TestIdleWorkerIsWokenByAnEvent: an event reaches the publisher at once,
// not at the worker's next tick (here every 15 s).
func TestIdleWorkerIsWokenByAnEvent(t *testing.T) {
	rec := &roundRecorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.GroupIdle = time.Minute
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Close(context.Background())
	for i := range 3 {
		time.Sleep(20 * time.Millisecond) // idle again
		p.RequestFinished(accessEvent(uint64(i+1), 7, t0, time.Millisecond, "GET", "/", 200))
		deadline := time.Now().Add(5 * time.Second)
		for rec.count() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("event %d not published after 5 s: the idle worker was not woken", i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
