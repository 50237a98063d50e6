package capture

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
)

// rec is a copy of a Line as a Sink saw it.
type rec struct {
	Stream    Stream
	Origin    string
	Text      string
	Truncated bool
	Time      time.Time
	Hook      hooks.Mark
}

// recordSink keeps every line it is handed.
type recordSink struct {
	mu    sync.Mutex
	lines []rec
	added chan struct{} // signalled (without blocking) on every line
}

func newRecordSink() *recordSink { return &recordSink{added: make(chan struct{}, 1)} }

func (s *recordSink) Line(l *Line) {
	s.mu.Lock()
	s.lines = append(s.lines, rec{l.Stream, l.Origin, string(l.Text), l.Truncated, l.Time, l.Hook})
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
}

func (s *recordSink) all() []rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rec(nil), s.lines...)
}

// texts returns the texts of the lines of stream s (all streams when 0).
func (s *recordSink) texts(st Stream) []string {
	var out []string
	for _, r := range s.all() {
		if st == 0 || r.Stream == st {
			out = append(out, r.Text)
		}
	}
	return out
}

// waitText waits until a line with this text was handed on.
func (s *recordSink) waitText(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, r := range s.all() {
			if r.Text == text {
				return
			}
		}
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("line %q never came; got %q", text, s.texts(0))
		}
	}
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			lo := max(0, i-2)
			t.Fatalf("%s differ from line %d (got %d lines, want %d):\n got %s\nwant %s", what, i, len(got), len(want),
				quoteAll(got[min(lo, len(got)):min(i+3, len(got))]), quoteAll(want[min(lo, len(want)):min(i+3, len(want))]))
		}
	}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 40 {
			s = fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
		}
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, " ") + "]"
}
