package ship

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/enrich"
)

// TestPublishBatch: a batch is spooled as its documents would be one by
// one: in order, replacements as replacements, an invalid document refused
// and counted without costing the others, and every accepted one kept for
// lookups.
func TestPublishBatch(t *testing.T) {
	out := &lockedBuffer{}
	p, err := New(Options{SpoolDir: t.TempDir(), Output: out, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var b enrich.Batch
	for i := range 3 {
		id, src := testDoc(i)
		b.Add(id, src, false)
	}
	b.Add([]byte("doc-empty"), nil, false) // refused: empty
	id1, src1 := testDoc(1)
	b.Add(id1, []byte(strings.Replace(string(src1), `"level":"info"`, `"level":"error"`, 1)), true)
	refused, err := p.PublishBatch(&b)
	if refused != 1 || err == nil || !strings.Contains(err.Error(), "empty document") {
		t.Fatalf("PublishBatch = %d, %v; want the empty document refused", refused, err)
	}
	st := p.Stats()
	if st.Queued != 4 || st.Replaced != 1 || st.Dropped != 1 || st.Spool.Appended != 4 {
		t.Errorf("stats %+v: want 4 queued (1 replacement), 1 dropped, 4 spooled", st)
	}
	if docs := p.Store().Request("req-1"); len(docs) != 1 || !strings.Contains(string(docs[0].Source), `"level":"error"`) {
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
	refused, err = p.PublishBatch(&b)
	if refused != b.Len() || !errors.Is(err, ErrClosed) {
		t.Errorf("PublishBatch after Close = %d, %v; want all %d refused with ErrClosed", refused, err, b.Len())
	}
}
