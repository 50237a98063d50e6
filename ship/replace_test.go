package ship

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// replacedDoc is version v of a document of session 1000 and request req.
func replacedDoc(req string, v int) []byte {
	return fmt.Appendf(nil, `{"@timestamp":"2024-05-01T12:00:00.000Z","message":"[openReplaySession.id=1000] GET /x -> 500 version %d",`+
		`"level":"error","openReplaySession":{"id":"1000"},"http":{"request":{"id":%q}},"version":%d}`, v, req, v)
}

// TestReplaceOverwritesWhicheverArrivesFirst: on the real node, a
// replacement overwrites its original when it comes after it, and survives
// an original that comes after it (the original's create gets a 409).
func TestReplaceOverwritesWhicheverArrivesFirst(t *testing.T) {
	n := realNode(t)
	p, _, index := shipTo(t, n, n.url)
	shipped := func(want uint64) func() bool { return func() bool { return p.Stats().Shipped >= want } }

	// Original first, in Elasticsearch before the replacement is published.
	if err := p.Publish([]byte("after"), replacedDoc("req-after", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the original shipped", shipped(1))
	if err := p.Replace([]byte("after"), replacedDoc("req-after", 2)); err != nil {
		t.Fatal(err)
	}
	// Replacement first: the original comes later and must not undo it.
	if err := p.Replace([]byte("before"), replacedDoc("req-before", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replacements shipped", shipped(3))
	if err := p.Publish([]byte("before"), replacedDoc("req-before", 1)); err != nil {
		t.Fatal(err)
	}
	// Both in one bulk request, original first.
	if err := p.Publish([]byte("same"), replacedDoc("req-same", 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Replace([]byte("same"), replacedDoc("req-same", 2)); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, p, 30*time.Second)

	if got := n.count(index); got != 3 {
		t.Fatalf("index holds %d documents, want 3", got)
	}
	for _, id := range []string{"after", "before", "same"} {
		st, b := n.do("GET", "/"+index+"/_doc/"+id, "")
		var res struct {
			Source struct{ Version int } `json:"_source"`
		}
		if err := json.Unmarshal(b, &res); st != 200 || err != nil {
			t.Fatalf("GET %s: %d %s", id, st, b)
		}
		if res.Source.Version != 2 {
			t.Errorf("document %s is version %d, want the replacement (2): %s", id, res.Source.Version, b)
		}
	}
	if st := p.Stats(); st.Queued != 6 || st.Replaced != 3 || st.Shipped != 6 || st.Duplicates != 1 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want 6 queued (3 replacements) and shipped, 1 duplicate (the late original)", st)
	}
}

// TestEmbeddedReplace: without Elasticsearch, both versions are written out
// as they come, and lookups show one document, the replacement.
func TestEmbeddedReplace(t *testing.T) {
	var out lockedBuffer
	opts := fastOptions(t)
	opts.Output = &out
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		replace bool
		id      string
		v       int
	}{{false, "a", 1}, {true, "a", 2}, {true, "b", 2}, {false, "b", 1}}
	for _, s := range steps {
		pub := p.Publish
		if s.replace {
			pub = p.Replace
		}
		if err := pub([]byte(s.id), replacedDoc("req-"+s.id, s.v)); err != nil {
			t.Fatal(err)
		}
	}
	closeWithin(t, p, 10*time.Second)

	lines := out.lines()
	if len(lines) != len(steps) {
		t.Fatalf("%d lines, want %d", len(lines), len(steps))
	}
	// A line says which document it is a version of, and whether it
	// replaces the one printed under that _id.
	for i, s := range steps {
		head := `{"_id":"` + s.id + `",`
		if s.replace {
			head = `{"_id":"` + s.id + `","_replaces":true,`
		}
		if want := head + string(replacedDoc("req-"+s.id, s.v)[1:]); lines[i] != want {
			t.Errorf("line %d: %s, want %s", i, lines[i], want)
		}
	}
	docs := p.Store().Session("1000")
	if got := ids(docs); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Session(1000) = %v, want [a b]", got)
	}
	for _, d := range docs {
		if !bytes.Contains(d.Source, []byte(`"version":2`)) {
			t.Errorf("document %s: %s, want the replacement", d.ID, d.Source)
		}
	}
}
