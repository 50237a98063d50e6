package enrich

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
		opts := testOptions()
		a := newTestAssembler(rec, opts)
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
		opts := testOptions()
		opts.GroupIdle = 50 * time.Millisecond
		a := newTestAssembler(rec, opts)
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

// FuzzAttributionPicksACandidate checks invariants 1, 3 and 4 of
// attribution.go on random request sets and lines: a live line is never
// given a session (or a request) that no request which could have printed
// it had, whatever its text names; a marker counts for nothing when the
// header is not trusted. plan describes the requests, 6 bytes each:
// session, method, path, start (ms), duration (ms; 255: still in flight)
// and flags (which id it has, whether the client chose it); its last byte
// is when the line was read. In the line, {idN} and {traceN} stand for the
// ids of request N, {pathN} for its path.
func FuzzAttributionPicksACandidate(f *testing.F) {
	for _, s := range []struct {
		plan []byte
		line string
	}{
		{[]byte{1, 0, 0, 0, 10, 1, 2, 0, 1, 5, 255, 3, 40}, `127.0.0.1 - - [01/May/2024 10:00:00] "GET {path0} HTTP/1.1" 200 -`},
		{[]byte{1, 0, 0, 0, 10, 0, 2, 0, 1, 30, 255, 0, 35}, "ERROR:app:Exception on {path0} [GET]"},
		{[]byte{1, 1, 2, 0, 255, 5, 3, 1, 2, 1, 255, 0, 20}, "INFO:app:[openReplaySession.id=6] search for {id0}"},
		{[]byte{1, 1, 2, 0, 5, 7, 3, 1, 2, 1, 255, 0, 90}, `{"msg":"x","request_id":"{id0}","trace_id":"{trace0}"}`},
		{[]byte{0, 0, 0, 0, 255, 0, 2, 0, 0, 0, 8, 2, 30}, "ERROR:django.request:Internal Server Error: {path1}"},
		{[]byte{3, 2, 1, 5, 20, 7, 2, 2, 1, 0, 255, 6, 24}, "GET {path0} 500 1.0 ms - 2"},
	} {
		f.Add(s.plan, s.line, false)
		f.Add(s.plan, s.line, true)
	}
	sessions := [...]uint64{0, 5, 6, 7}
	methods := [...]string{"GET", "POST", ""}
	paths := [...]string{"/api/cart", "/api/slow", "/search", ""}
	f.Fuzz(func(t *testing.T, plan []byte, line string, ignoreMarkers bool) {
		if len(plan) < 7 || len(plan) > 6*16+1 || len(line) > 4096 {
			return
		}
		a := NewAttributor(grace)
		a.ignoreMarkers = ignoreMarkers
		type req struct {
			seq, session uint64
			from, to     time.Time // to zero: in flight
		}
		var reqs []req
		for i := 0; i+6 < len(plan); i += 6 {
			b := plan[i : i+6]
			n := len(reqs)
			r := req{seq: uint64(n + 1), session: sessions[b[0]%4], from: ms(int(b[3]))}
			s := &proxy.RequestStart{Seq: r.seq, Start: r.from, Session: r.session,
				Method: []byte(methods[b[1]%3]), Path: []byte(paths[b[2]%4]),
				ClientRequestID: b[5]&2 != 0, ClientTrace: b[5]&4 != 0}
			if b[5]&1 != 0 {
				s.RequestID = []byte(fmt.Sprintf("req%02d-7f3a9c2e11d04b", n))
			}
			s.TraceID[0], s.TraceID[15] = byte(n+1), 0xab
			a.RequestStarted(s)
			if b[4] != 255 {
				r.to = r.from.Add(time.Duration(b[4]) * time.Millisecond)
				ev := accessEvent(r.seq, r.session, r.from, r.to.Sub(r.from), string(s.Method), string(s.Path), 200+int(b[5]>>3)*50)
				ev.RequestID = append(ev.RequestID, s.RequestID...)
				ev.TraceID, ev.ClientRequestID, ev.ClientTrace = s.TraceID, s.ClientRequestID, s.ClientTrace
				a.RequestFinished(ev)
			}
			reqs = append(reqs, r)
			line = strings.ReplaceAll(line, fmt.Sprintf("{id%d}", n), string(s.RequestID))
			line = strings.ReplaceAll(line, fmt.Sprintf("{trace%d}", n), hex.EncodeToString(s.TraceID[:]))
			line = strings.ReplaceAll(line, fmt.Sprintf("{path%d}", n), string(s.Path))
		}
		at := ms(int(plan[len(plan)-1]))
		var lp lineParser
		p := lp.parse([]byte(line))
		got := a.attribute(&evidence{time: at, live: true, text: []byte(line), request: findRequest(p.message),
			requestID: p.requestID, traceID: p.traceID, fieldSession: p.fieldSession, msgMarker: p.msgMarker})
		if got.session == 0 {
			if got.level != attributionNone || got.seq != 0 {
				t.Fatalf("no session but %s seq %d", got.level, got.seq)
			}
			return
		}
		if ignoreMarkers && got.source == "marker" {
			t.Fatalf("%q: attributed by a marker that is not trusted", line)
		}
		// Invariant 1: a request of that session could have printed it.
		could := false
		for _, r := range reqs {
			if r.session == got.session && !at.Before(r.from) && (r.to.IsZero() || !at.After(r.to.Add(grace))) {
				could = true
				if got.seq != 0 && got.seq != r.seq && !slices.ContainsFunc(reqs, func(o req) bool { return o.seq == got.seq && o.session == got.session }) {
					t.Fatalf("%q: request %d is not of session %d", line, got.seq, got.session)
				}
			}
		}
		if !could {
			t.Fatalf("%q read at %v: attributed to session %d (%s, %s), which had no request that could have printed it: %+v",
				line, at.Sub(t0), got.session, got.level, got.source, reqs)
		}
		if got.seq != 0 {
			r := reqs[got.seq-1]
			if r.session != got.session || at.Before(r.from) || !r.to.IsZero() && at.After(r.to.Add(grace)) {
				t.Fatalf("%q read at %v: attributed to request %+v, which could not have printed it", line, at.Sub(t0), r)
			}
		}
	})
}
