package ship

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
	replaceThreeWays(t, n, p, index)
	if st := p.Stats(); st.Queued != 6 || st.Replaced != 3 || st.Shipped != 6 || st.Duplicates != 1 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want 6 queued (3 replacements) and shipped, 1 duplicate (the late original)", st)
	}
}

// TestReplaceInDataStreamWinsWithOneDocument: the same into a data stream,
// which refuses the index action: a replacement after its original is
// written over it in its backing index (dataStreamOverwrite), also after a
// rollover put the original in an older backing index.
func TestReplaceInDataStreamWinsWithOneDocument(t *testing.T) {
	n := realNode(t)
	var r [4]byte
	rand.Read(r[:])
	opts := fastOptions(t, n.url)
	opts.Index, opts.DataStream, opts.Namespace, opts.InstallTemplate = testIndex(t, n), true, "t"+hex.EncodeToString(r[:]), true
	target := Target{Index: opts.Index, DataStream: true, Namespace: opts.Namespace}
	t.Cleanup(func() {
		n.do("DELETE", "/_data_stream/"+target.DataStreamName(), "")
		n.do("DELETE", "/_index_template/"+target.TemplateName(), "")
	})
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	before := overwrittenTotal.Get()
	// An original in a backing index that a rollover made old.
	if err := p.Publish([]byte("rolled"), replacedDoc("req-rolled", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the original shipped", func() bool { return p.Stats().Shipped >= 1 })
	if st, b := n.do("POST", "/"+target.DataStreamName()+"/_rollover", ""); st != 200 {
		t.Fatalf("rollover: %d %s", st, b)
	}
	if err := p.Replace([]byte("rolled"), replacedDoc("req-rolled", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replacement shipped", func() bool { return p.Stats().Shipped >= 2 })
	replaceThreeWays(t, n, p, target.Index)
	if got := n.count(target.Index); got != 4 {
		t.Errorf("the alias finds %d documents, want 4", got)
	}
	// after, same and rolled were written over their original.
	if got := overwrittenTotal.Get() - before; got != 3 {
		t.Errorf("%d replacements written over their original, want 3", got)
	}
}

// replaceThreeWays ships three replaced documents through p into target
// (an index, or the alias of a data stream): the original first, the
// replacement first, both in one bulk request; each must end as one
// document, the replacement.
func replaceThreeWays(t *testing.T, n *node, p *Shipper, target string) {
	t.Helper()
	shipped := func(want uint64) func() bool { return func() bool { return p.Stats().Shipped >= want } }
	base := p.Stats().Shipped

	// Original first, in Elasticsearch before the replacement is published.
	if err := p.Publish([]byte("after"), replacedDoc("req-after", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the original shipped", shipped(base+1))
	if err := p.Replace([]byte("after"), replacedDoc("req-after", 2)); err != nil {
		t.Fatal(err)
	}
	// Replacement first: the original comes later and must not undo it.
	if err := p.Replace([]byte("before"), replacedDoc("req-before", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replacements shipped", shipped(base+3))
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

	n.do("POST", "/"+target+"/_refresh", "")
	st, b := n.do("POST", "/"+target+"/_search", `{"size":100,"query":{"ids":{"values":["after","before","same","rolled"]}}}`)
	var res struct {
		Hits struct {
			Hits []struct {
				ID     string                `json:"_id"`
				Source struct{ Version int } `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &res); st != 200 || err != nil {
		t.Fatalf("search %s: %d %s", target, st, b)
	}
	versions := map[string][]int{}
	for _, h := range res.Hits.Hits {
		versions[h.ID] = append(versions[h.ID], h.Source.Version)
	}
	for id, v := range versions {
		if !reflect.DeepEqual(v, []int{2}) {
			t.Errorf("document %s: versions %v, want exactly one, the replacement (2)", id, v)
		}
	}
	for _, id := range []string{"after", "before", "same"} {
		if versions[id] == nil {
			t.Errorf("document %s is missing", id)
		}
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
	docs := p.MemoryStore().Session("1000")
	if got := ids(docs); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Session(1000) = %v, want [a b]", got)
	}
	for _, d := range docs {
		if !bytes.Contains(d.Source, []byte(`"version":2`)) {
			t.Errorf("document %s: %s, want the replacement", d.ID, d.Source)
		}
	}
}
