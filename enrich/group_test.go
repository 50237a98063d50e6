package enrich

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/capture/hooks"
)

// emitted collects what a grouper emits, as "stream|text".
type emitted []string

func (e *emitted) emit(g *group) {
	*e = append(*e, g.key.stream.String()+"|"+string(g.text))
}

func TestGrouperKeepsStreamsApart(t *testing.T) {
	gr := newGrouper(time.Second)
	var out emitted
	add := func(ms int, s capture.Stream, text string) {
		gr.add(lineAt(t0.Add(time.Duration(ms)*time.Millisecond), s, text), out.emit)
	}
	add(0, capture.Stderr, "ERROR:app:Exception on /x [GET]")
	add(1, capture.Stdout, "request 1 done") // another stream: does not end the traceback
	add(2, capture.Stderr, "Traceback (most recent call last):")
	add(3, capture.Stderr, `  File "app.py", line 3, in x`)
	add(4, capture.Stdout, "request 2 done")
	add(5, capture.Stderr, "KeyError: 'k'")
	add(6, capture.Stderr, "INFO:werkzeug:GET /x 500")
	gr.flushAll(out.emit)
	want := emitted{
		"stdout|request 1 done",
		"stderr|ERROR:app:Exception on /x [GET]\nTraceback (most recent call last):\n  File \"app.py\", line 3, in x\nKeyError: 'k'",
		"stdout|request 2 done",
		"stderr|INFO:werkzeug:GET /x 500",
	}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

// TestGrouperKeepsHookedRequestsApart: two requests' tracebacks written to
// one stream at once, every line marked by a runtime hook with its request,
// are two records.
func TestGrouperKeepsHookedRequestsApart(t *testing.T) {
	gr := newGrouper(time.Second)
	var out emitted
	a, b := hooks.Mark{Span: [8]byte{1}}, hooks.Mark{Span: [8]byte{2}}
	add := func(ms int, m hooks.Mark, text string) {
		l := lineAt(t0.Add(time.Duration(ms)*time.Millisecond), capture.Stderr, text)
		l.Hook = m
		gr.add(l, out.emit)
	}
	add(0, a, "ERROR:app:Exception on /a [GET]")
	add(1, b, "ERROR:app:Exception on /b [GET]")
	add(2, a, "Traceback (most recent call last):")
	add(3, b, "Traceback (most recent call last):")
	add(4, b, `  File "b.py", line 1, in b`)
	add(5, a, `  File "a.py", line 1, in a`)
	add(6, a, "KeyError: 'a'")
	add(7, b, "KeyError: 'b'")
	gr.flushAll(out.emit)
	want := emitted{
		"stderr|ERROR:app:Exception on /a [GET]\nTraceback (most recent call last):\n  File \"a.py\", line 1, in a\nKeyError: 'a'",
		"stderr|ERROR:app:Exception on /b [GET]\nTraceback (most recent call last):\n  File \"b.py\", line 1, in b\nKeyError: 'b'",
	}
	if len(out) != 2 || !(out[0] == want[0] && out[1] == want[1] || out[0] == want[1] && out[1] == want[0]) {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestGrouperIdleFlush(t *testing.T) {
	gr := newGrouper(250 * time.Millisecond)
	var out emitted
	gr.add(lineAt(t0, capture.Stderr, "ERROR boom"), out.emit)
	gr.add(lineAt(t0.Add(10*time.Millisecond), capture.Stderr, "  indented detail"), out.emit)
	gr.flush(t0.Add(259*time.Millisecond), out.emit) // idle counts from the last line
	if len(out) != 0 {
		t.Fatalf("flushed before the idle time: %q", out)
	}
	gr.flush(t0.Add(260*time.Millisecond), out.emit)
	if want := (emitted{"stderr|ERROR boom\n  indented detail"}); fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", out, want)
	}
	if len(gr.open) != 0 {
		t.Errorf("%d groups still open", len(gr.open))
	}
}

func TestGrouperFlushOrderIsStable(t *testing.T) {
	for range 20 { // map iteration order varies; the emitted order must not
		gr := newGrouper(time.Second)
		var out emitted
		for i, s := range []capture.Stream{capture.Stderr, capture.Stdout, capture.File} {
			l := lineAt(t0.Add(time.Duration(3-i)*time.Millisecond), s, "line "+strconv.Itoa(i))
			l.Origin = "/var/log/app.log"
			gr.add(l, out.emit)
		}
		gr.flushAll(out.emit)
		if want := (emitted{"file|line 2", "stdout|line 1", "stderr|line 0"}); fmt.Sprint(out) != fmt.Sprint(want) {
			t.Fatalf("got %q, want %q", out, want)
		}
	}
}

func TestGrouperJSONLinesStandAlone(t *testing.T) {
	gr := newGrouper(time.Second)
	var out emitted
	gr.add(lineAt(t0, capture.Stdout, "ERROR plain header"), out.emit)
	gr.add(lineAt(t0, capture.Stdout, `{"level":"error","msg":"json"}`), out.emit)
	if want := (emitted{"stdout|ERROR plain header", `stdout|{"level":"error","msg":"json"}`}); fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("a JSON line must end the open record and be emitted at once: got %q", out)
	}
	gr.add(lineAt(t0, capture.Stdout, `    at frame (x.js:1:1)`), out.emit) // cannot continue a JSON line
	gr.flushAll(out.emit)
	if len(out) != 3 || out[2] != "stdout|    at frame (x.js:1:1)" {
		t.Fatalf("got %q", out)
	}
}

func TestGrouperSplitsOversizedRecords(t *testing.T) {
	gr := newGrouper(time.Second)
	var groups []*group
	emit := func(g *group) { c := *g; c.text = []byte(string(g.text)); groups = append(groups, &c) }
	var in []string
	in = append(in, "goroutine 1 [running]:")
	for i := range 3 * maxGroupLines {
		in = append(in, "main.f"+strconv.Itoa(i)+"()", "\t/src/main.go:"+strconv.Itoa(i)+" +0x1d")
	}
	for _, s := range in {
		gr.add(lineAt(t0, capture.Stderr, s), emit)
	}
	gr.flushAll(emit)
	if len(groups) < 3 {
		t.Fatalf("%d groups for %d lines", len(groups), len(in))
	}
	var joined []string
	for i, g := range groups {
		if g.lines > maxGroupLines || len(g.text) > maxGroupBytes {
			t.Errorf("group %d has %d lines, %d bytes", i, g.lines, len(g.text))
		}
		if g.continued != (i > 0) || g.kind != traceGoStack || g.stackAt != 0 {
			t.Errorf("group %d: continued=%v kind=%d stackAt=%d", i, g.continued, g.kind, g.stackAt)
		}
		joined = append(joined, string(g.text))
	}
	if strings.Join(joined, "\n") != strings.Join(in, "\n") {
		t.Error("lines were lost or reordered across the split")
	}
}

func TestGrouperBoundsOpenRecords(t *testing.T) {
	gr := newGrouper(time.Second)
	var out emitted
	for i := range maxOpenGroups + 10 {
		l := lineAt(t0, capture.Ingest, "line")
		l.Origin = "10.0.0.1:" + strconv.Itoa(i)
		gr.add(l, out.emit)
	}
	if len(gr.open) != maxOpenGroups || len(out) != 10 {
		t.Fatalf("open %d, emitted %d", len(gr.open), len(out))
	}
}

func TestGrouperRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lines  []string
		groups int    // records expected
		exc    string // exception line of the first record
		stack  string // first line of its stack trace
	}{
		{"python warning then traceback",
			[]string{"/app/a.py:1: DeprecationWarning: old", "  x = old()", "Traceback (most recent call last):", "  File \"a.py\"", "ValueError: v"},
			2, "", ""},
		{"chained python",
			[]string{"Traceback (most recent call last):", "  File \"a\"", "A: 1", "", "The above exception was the direct cause of the following exception:", "", "Traceback (most recent call last):", "  File \"b\"", "B: 2", "next record"},
			2, "B: 2", "Traceback (most recent call last):"},
		{"logback message then exception",
			[]string{"10:00 [main] ERROR c.e.Jobs - failed", "java.io.IOException: disk", "\tat c.e.Jobs.run(Jobs.java:1)", "Caused by: x.Y: z", "\t... 3 more", "10:01 [main] INFO c.e.Jobs - ok"},
			2, "java.io.IOException: disk", "java.io.IOException: disk"},
		{"unqualified word after a message is not an exception",
			[]string{"INFO starting", "Error: this is a new record"},
			2, "", ""},
		{"node stack",
			[]string{"TypeError: x is undefined", "    at f (/a.js:1:1)", "    at g (/a.js:2:2)", "server up"},
			2, "TypeError: x is undefined", "TypeError: x is undefined"},
		{"go panic with signal",
			[]string{"panic: runtime error: invalid memory address or nil pointer dereference", "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f1a2]", "", "goroutine 1 [running]:", "main.main()", "\t/src/main.go:9 +0x12", "exit status 2", "$ "},
			2, "panic: runtime error: invalid memory address or nil pointer dereference", "panic: runtime error: invalid memory address or nil pointer dereference"},
		{"werkzeug banner lines stay apart",
			[]string{" * Serving Flask app 'app'", " * Debug mode: off"},
			2, "", ""},
		{"blank lines carry nothing",
			[]string{"", "   ", "one"},
			1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gr := newGrouper(time.Second)
			var first *group
			n := 0
			emit := func(g *group) {
				if n == 0 {
					c := *g
					c.text = []byte(string(g.text))
					first = &c
				}
				n++
			}
			for i, s := range tc.lines {
				gr.add(lineAt(t0.Add(time.Duration(i)*time.Millisecond), capture.Stderr, s), emit)
			}
			gr.flushAll(emit)
			if n != tc.groups {
				t.Fatalf("%d records, want %d", n, tc.groups)
			}
			if got := string(first.exception()); got != tc.exc {
				t.Errorf("exception line %q, want %q", got, tc.exc)
			}
			if got := string(firstLine(first.stack())); got != tc.stack {
				t.Errorf("stack starts %q, want %q", got, tc.stack)
			}
		})
	}
}
