package enrich

import "testing"

func TestMarkingPolicyAuto(t *testing.T) {
	m := newMarkingPolicy(MarkAuto, 3)
	var got []bool
	for i := range 6 {
		got = append(got, m.mark(7, levelInfo))
		if i == 4 {
			got = append(got, m.mark(7, levelError), m.mark(7, levelWarning), m.mark(7, levelDebug))
		}
	}
	want := []bool{true, true, true, false, false, true, true, false, false}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("marks %v, want %v (info and debug share the limit; problems always)", got, want)
		}
	}
	if !m.mark(8, levelInfo) {
		t.Error("another session has its own count")
	}
	if m.mark(0, levelError) {
		t.Error("a document without a session cannot carry a marker")
	}
}

func TestMarkingPolicyModes(t *testing.T) {
	all, problems := newMarkingPolicy(MarkAll, 1), newMarkingPolicy(MarkProblems, 200)
	for range 5 {
		if !all.mark(1, levelInfo) || !all.mark(1, levelDebug) {
			t.Fatal("mark all marks every document of a session")
		}
		if problems.mark(1, levelInfo) || !problems.mark(1, levelWarning) || !problems.mark(1, levelError) {
			t.Fatal("mark problems marks warnings and errors only")
		}
	}
}

// TestMarkingPolicyKeepsErrorsInView plays a long session as OpenReplay sees it:
// of 5000 documents (mostly info, one error in 50) only the marked ones are
// searchable, OpenReplay returns at most 1000, and every error must be
// among them.
func TestMarkingPolicyKeepsErrorsInView(t *testing.T) {
	m := newMarkingPolicy(MarkAuto, testOptions().MarkInfoLimit)
	marked, errorsMarked, errorsTotal := 0, 0, 0
	for i := range 5000 {
		l := levelInfo
		if i%50 == 49 {
			l = levelError
			errorsTotal++
		}
		if m.mark(42, l) {
			marked++
			if l == levelError {
				errorsMarked++
			}
		}
	}
	if errorsMarked != errorsTotal {
		t.Errorf("%d of %d errors marked", errorsMarked, errorsTotal)
	}
	if marked > 1000 {
		t.Errorf("%d marked documents: OpenReplay's 1000 hits would not hold all the errors", marked)
	}
	if marked != testOptions().MarkInfoLimit+errorsTotal {
		t.Errorf("%d marked, want %d info + %d errors", marked, testOptions().MarkInfoLimit, errorsTotal)
	}
}

func TestMarkingPolicyMemoryIsBounded(t *testing.T) {
	m := newMarkingPolicy(MarkAuto, 2)
	m.mark(1, levelInfo) // session 1: count 1
	for s := uint64(2); s < 2+markingGeneration; s++ {
		m.mark(s, levelInfo) // fills a generation: session 1 moves to the old one
	}
	if len(m.cur)+len(m.old) > 2*markingGeneration {
		t.Fatalf("%d counters", len(m.cur)+len(m.old))
	}
	if !m.mark(1, levelInfo) || m.mark(1, levelInfo) {
		t.Error("a session seen in the previous generation keeps its count")
	}
	for s := uint64(1 << 40); s < 1<<40+3*markingGeneration; s++ {
		m.mark(s, levelInfo)
	}
	if len(m.cur)+len(m.old) > 2*markingGeneration {
		t.Fatalf("%d counters after many sessions", len(m.cur)+len(m.old))
	}
}

// --mark-info-limit 0 marks no info document of a session, and every
// problem still.
func TestMarkerInfoLimitZero(t *testing.T) {
	m := newMarkingPolicy(MarkAuto, 0)
	if m.mark(42, levelInfo) {
		t.Error("an info document was marked with limit 0")
	}
	if !m.mark(42, levelError) || !m.mark(42, levelWarning) {
		t.Error("a problem was not marked with limit 0")
	}
}
