package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// recordingTB stands in for testing.TB to see what a checker reports.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestConservationCheckerCatchesLossAndDuplicates proves the conservation
// check can fail: fed documents with a loss, a duplicate, a wrong session
// and a request never sent, it reports each; fed the right ones, nothing.
func TestConservationCheckerCatchesLossAndDuplicates(t *testing.T) {
	l := newLoad(t, "r", "127.0.0.1:1")
	for range 5 {
		l.record(l.claim(), result{status: 200, answered: true, backend: true})
	}
	doc := func(i int, session uint64) accessDoc {
		src := fmt.Sprintf(`{"event":{"dataset":"replaylink.access"},"http":{"request":{"id":%q}},"openReplaySession":{"id":"%d"}}`, l.requestID(i), session)
		var d accessDoc
		d.Source = json.RawMessage(src)
		json.Unmarshal(d.Source, &d.Doc)
		return d
	}
	good := []accessDoc{doc(0, l.session(0)), doc(1, l.session(1)), doc(2, l.session(2)), doc(3, l.session(3)), doc(4, l.session(4))}
	rec := &recordingTB{TB: t}
	checkExactlyOnce(rec, good, l, l.answeredIDs(), l.sentIDs(), &report{})
	if len(rec.errors) > 0 {
		t.Fatalf("the right documents were reported: %q", rec.errors)
	}

	bad := []accessDoc{doc(0, l.session(0)), doc(1, l.session(1)), doc(1, l.session(1)), doc(3, 999), doc(4, l.session(4)), doc(77, l.session(77))}
	rec = &recordingTB{TB: t}
	checkExactlyOnce(rec, bad, l, l.answeredIDs(), l.sentIDs(), &report{})
	all := strings.Join(rec.errors, "\n")
	for _, want := range []string{"r-2 was answered but has no document", "r-1 has 2 documents", "r-3: session \"999\"", "never sent", "1 missing, 1 duplicates"} {
		if !strings.Contains(all, want) {
			t.Errorf("the checker did not report %q; it said:\n%s", want, all)
		}
	}
}
