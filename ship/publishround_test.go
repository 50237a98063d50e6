package ship

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/memstore"
	"github.com/replaylink/replaylink/proxy"
)

// TestPublishRound: a Round is spooled as its documents would be one by
// one: in order, replacements as replacements, an invalid document refused
// and counted without costing the others, and every accepted one kept for
// lookups.
func TestPublishRound(t *testing.T) {
	out := &lockedBuffer{}
	opts := fastOptions(t)
	opts.Output, opts.FlushInterval = out, 10*time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var rd enrich.Round
	for i := range 3 {
		id, src := testDoc(i)
		rd.Add(id, src, false)
	}
	rd.Add([]byte("doc-empty"), nil, false) // refused: empty
	id1, src1 := testDoc(1)
	rd.Add(id1, []byte(strings.Replace(string(src1), `"level":"info"`, `"level":"error"`, 1)), true)
	refused, err := p.PublishRound(&rd)
	if refused != 1 || err == nil || !strings.Contains(err.Error(), "empty document") {
		t.Fatalf("PublishRound = %d, %v; want the empty document refused", refused, err)
	}
	st := p.Stats()
	if st.Queued != 4 || st.Replaced != 1 || st.Dropped != 1 || st.Spool.Appended != 4 {
		t.Errorf("stats %+v: want 4 queued (1 replacement), 1 dropped, 4 spooled", st)
	}
	if docs := p.MemoryStore().Request("req-1"); len(docs) != 1 || !strings.Contains(string(docs[0].Source), `"level":"error"`) {
		t.Errorf("lookup of req-1: %d documents, want its replacement", len(docs))
	}
	closeWithin(t, p, 10*time.Second)
	lines := out.lines()
	if len(lines) != 4 {
		t.Fatalf("%d lines written, want 4: %q", len(lines), lines)
	}
	for i, want := range []string{"items/0 ", "items/1 ", "items/2 ", `"level":"error"`} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q: want %q (spool order)", i, lines[i], want)
		}
	}

	// After Close every document is refused, and says so.
	refused, err = p.PublishRound(&rd)
	if refused != rd.Len() || !errors.Is(err, ErrClosed) {
		t.Errorf("PublishRound after Close = %d, %v; want all %d refused with ErrClosed", refused, err, rd.Len())
	}
}

// TestPublishRoundKeysMatchTheJSON: the lookup keys enrich hands over with
// each document are what the memory store finds scanning its JSON. The
// store filled from enrich's Rounds must answer every lookup as a store
// filled by scanning the same documents.
func TestPublishRoundKeysMatchTheJSON(t *testing.T) {
	opts := fastOptions(t)
	opts.Output = &lockedBuffer{}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := enrich.New(enrich.Options{Publisher: p, ServiceName: "shop", MarkInfoLimit: 200, AttributionGrace: 20 * time.Millisecond, QueueSize: 16384})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	sessions := []uint64{0, 7, 42, 18446744073709551615}
	var requests []string
	unfindable := 0
	for i := range 40 {
		ev := proxy.AcquireEvent()
		ev.Seq, ev.Start, ev.Duration = uint64(i+1), time.Now(), time.Millisecond
		ev.Status = []int{200, 404, 500, 502}[i%4]
		ev.Session, ev.Source = sessions[i%len(sessions)], proxy.SourceHeader
		ev.Method, ev.Path = append(ev.Method, "GET"...), fmt.Appendf(ev.Path, "/items/%d", i)
		// Request ids as clients send them, some needing JSON escapes.
		// (Not valid UTF-8: the store reads the JSON for it; not looked up.)
		id := []string{"req-%d-7d9b4c3e8a51", `req-%d-"quoted"\slash`, "req-%d-ü-tab\t", "", "req-%d-\xff"}[i%5]
		if id != "" {
			id = fmt.Sprintf(id, i)
		}
		if id != "" && i%5 != 4 {
			requests = append(requests, id)
		} else if ev.Session == 0 {
			unfindable++ // by these lookups
		}
		ev.RequestID = append(ev.RequestID, id...)
		e.RequestFinished(ev)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	keyed := p.MemoryStore()
	scanned := memstore.New(1000, 64<<20)
	seen := map[string]bool{}
	var all []memstore.Document
	for _, s := range sessions[1:] {
		all = append(all, keyed.Session(strconv.FormatUint(s, 10))...)
	}
	for _, r := range requests {
		all = append(all, keyed.Request(r)...)
	}
	for _, d := range all {
		if !seen[d.ID] {
			seen[d.ID] = true
			scanned.Add([]byte(d.ID), d.Source)
		}
	}
	if keyed.Len() != 40 || scanned.Len() != 40-unfindable {
		t.Fatalf("keyed store holds %d documents, lookups found %d; want 40 and %d", keyed.Len(), scanned.Len(), 40-unfindable)
	}
	for _, s := range sessions[1:] {
		k, sc := ids(keyed.Session(strconv.FormatUint(s, 10))), ids(scanned.Session(strconv.FormatUint(s, 10)))
		if len(k) == 0 || !slices.Equal(k, sc) {
			t.Errorf("session %d: keyed %v, scanned %v", s, k, sc)
		}
	}
	for _, r := range requests {
		k, sc := ids(keyed.Request(r)), ids(scanned.Request(r))
		if len(k) != 1 || !slices.Equal(k, sc) {
			t.Errorf("request %q: keyed %v, scanned %v", r, k, sc)
		}
	}
	closeWithin(t, p, 10*time.Second)
}
