package enrich

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// corpusSeeds adds every line of the golden corpus (for the line parser) or
// every whole sample (for the grouper) as fuzz seeds, beside the seeds in
// testdata/fuzz.
func corpusSeeds(f *testing.F, lines bool) {
	files, _ := filepath.Glob("testdata/corpus/*.log")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if !lines {
			f.Add(b)
			continue
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	corpusSeeds(f, true)
	f.Fuzz(func(t *testing.T, line []byte) {
		var lp lineParser
		p := lp.parse(line)
		if p.format > formatLogfmt || p.level > levelError {
			t.Fatalf("format %d level %d", p.format, p.level)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) && p.format != formatJSON {
			t.Fatalf("a valid JSON object was not read as JSON: %q", line)
		}
		// Whatever the line, its document satisfies the contract.
		rec := &recorder{}
		a := newTestAssembler(rec, Options{})
		a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: t0, Session: 42})
		a.addLine(&capture.Line{Time: t0, Stream: capture.Stderr, Text: line}, t0)
		a.flushAll()
		for _, d := range rec.docs {
			checkContract(t, d)
		}
	})
}

// FuzzGrouper feeds the bytes as lines on two streams, with gaps and flushes
// the input decides, and checks that no line is lost, duplicated or
// reordered, that groups stay within their bounds, and that every document
// made of them satisfies the contract.
func FuzzGrouper(f *testing.F) {
	corpusSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		gr := newGrouper(50 * time.Millisecond)
		got := map[capture.Stream][]string{}
		emit := func(g *group) {
			if g.lines > maxGroupLines || g.lines > 1 && len(g.text) > maxGroupBytes {
				t.Fatalf("group of %d lines, %d bytes", g.lines, len(g.text))
			}
			if g.headerEnd > len(g.text) || g.stackAt > len(g.text) || g.excAt > g.excEnd || g.excEnd > len(g.text) {
				t.Fatalf("offsets out of range: header %d stack %d exc %d-%d of %d", g.headerEnd, g.stackAt, g.excAt, g.excEnd, len(g.text))
			}
			for _, l := range bytes.Split(g.text, []byte("\n")) {
				if !isBlank(l) {
					got[g.key.stream] = append(got[g.key.stream], string(l))
				}
			}
		}
		want := map[capture.Stream][]string{}
		rec := &recorder{}
		a := newTestAssembler(rec, Options{GroupIdle: 50 * time.Millisecond})
		a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: t0, Session: 42})
		now := t0
		for i, l := range bytes.Split(data, []byte("\n")) {
			stream := capture.Stderr
			if len(l) > 0 && l[0]%5 == 0 {
				stream = capture.Stdout
			}
			if len(l) > 0 {
				now = now.Add(time.Duration(l[len(l)-1]%64) * time.Millisecond)
			}
			line := &capture.Line{Time: now, Stream: stream, Text: l}
			gr.add(line, emit)
			a.addLine(line, now)
			if i%7 == 6 {
				gr.flush(now, emit)
				a.tick(now)
			}
			if trimmed := bytes.TrimRight(l, "\r\n"); !isBlank(trimmed) {
				want[stream] = append(want[stream], string(trimmed))
			}
		}
		gr.flushAll(emit)
		a.flushAll()
		for _, s := range []capture.Stream{capture.Stdout, capture.Stderr} {
			if len(got[s]) != len(want[s]) {
				t.Fatalf("%s: %d lines out, %d in", s, len(got[s]), len(want[s]))
			}
			for i := range want[s] {
				if got[s][i] != want[s][i] {
					t.Fatalf("%s line %d: got %q, want %q", s, i, got[s][i], want[s][i])
				}
			}
		}
		for _, d := range rec.docs {
			checkContract(t, d)
		}
	})
}

// FuzzFindRequest: the scanner never panics, and what it finds lies in the
// line: a path starting with '/', without its query, a known method, a
// status in range.
func FuzzFindRequest(f *testing.F) {
	corpusSeeds(f, true)
	for _, s := range []string{
		"ERROR:app:Exception on /api/cart [GET]",
		`127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart?id=9 HTTP/1.1" 500 -`,
		`Started GET "/api/cart" for 127.0.0.1`,
		"GET /x 200",
		"Internal Server Error: /x",
		`http://h:80 "GET /x HTTP/1.1" 200 1`,
		`"GET /`, "Exception on /", "GET  ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r := findRequest(line)
		if !r.found() {
			if r.method != methodUnknown || r.status != 0 {
				t.Fatalf("%q: no path but method %d status %d", line, r.method, r.status)
			}
			return
		}
		if len(r.path) == 0 || r.path[0] != '/' || bytes.ContainsAny(r.path, "?#") || !bytes.Contains(line, r.path) {
			t.Fatalf("%q: path %q", line, r.path)
		}
		if r.method >= methodOther || r.status != 0 && (r.status < 100 || r.status > 599) {
			t.Fatalf("%q: method %d status %d", line, r.method, r.status)
		}
	})
}
