package enrich

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/*.golden from the current output (review the diff!)")

// TestCorpusGolden runs every sample in testdata/corpus through the worker's
// path (grouping, parsing, attribution, marking, encoding) and compares the
// documents with the reviewed golden file beside it. The sample is printed
// on stderr, one line per millisecond, while one request of session 42 is in
// flight: every record is attributed by window unless it says otherwise.
func TestCorpusGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".log")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := runCorpus(t, in)
			compareGolden(t, strings.TrimSuffix(f, ".log")+".golden", got)
		})
	}
}

// TestExamplesGolden renders the documents docs/document-format.md shows:
// an access document, the Flask failure merged into one error document, and
// a backend line that could not be attributed.
func TestExamplesGolden(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.ServiceName = "shop"
	opts.HostName = "shop-7d9c-x2k4f"
	a := newTestAssembler(rec, opts)
	ok := accessEvent(1, 7394857349857, ms(0), 8300*time.Microsecond, "GET", "/api/endpoint", 200)
	ok.Source = proxy.SourceToken
	ok.ClientIP = append(ok.ClientIP, "203.0.113.9"...)
	ok.UserAgent = append(ok.UserAgent, "Mozilla/5.0 (X11; Linux x86_64)"...)
	ok.RequestID = append(ok.RequestID, "2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17"...)
	ok.Upstream = append(ok.Upstream, "127.0.0.1:5000"...)
	ok.BytesOut = 7
	a.addEvent(ok, ms(9))

	a.attr.RequestStarted(&proxy.RequestStart{Seq: 2, Start: ms(100), Session: 7394857349857, Source: proxy.SourceToken})
	fail := accessEvent(2, 7394857349857, ms(100), 12400*time.Microsecond, "GET", "/api/cart", 500)
	fail.Source = proxy.SourceToken
	fail.Query = append(fail.Query, "id=9"...)
	fail.ErrorBody = append(fail.ErrorBody, "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>"...)
	fail.BytesOut = 265
	a.attr.finish(fail)
	a.addEvent(fail, ms(113))
	for _, l := range flaskFailure {
		a.addLine(lineAt(ms(105), capture.Stderr, l), ms(113))
	}
	a.addLine(lineAt(ms(113), capture.Stderr, werkzeugLine), ms(113))

	a.attr.RequestStarted(&proxy.RequestStart{Seq: 3, Start: ms(200), Session: 7394857349857})
	a.attr.RequestStarted(&proxy.RequestStart{Seq: 4, Start: ms(201), Session: 8120394857712})
	a.addLine(lineAt(ms(202), capture.Stderr, "WARNING:app.cache:cache miss storm: 120 keys"), ms(202))
	a.flushAll()

	var out bytes.Buffer
	for i, d := range rec.docs {
		checkContract(t, d)
		out.WriteString("# _id " + rec.ids[i] + "\n")
		if err := json.Indent(&out, d, "", "  "); err != nil {
			t.Fatal(err)
		}
		out.WriteString("\n\n")
	}
	compareGolden(t, "testdata/examples.golden", out.Bytes())
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./enrich -run %s -update, then review the file)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("documents differ from %s (if the change is intended, rerun with -update and review the diff)\n%s", golden, diffLines(want, got))
	}
}

func runCorpus(t *testing.T, in []byte) []byte {
	rec := &recorder{}
	opts := testOptions()
	opts.ServiceName = "shop"
	a := newTestAssembler(rec, opts)
	a.hold = 0 // no access events here: publish records as they complete
	a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: t0.Add(-time.Millisecond), Session: 42, Source: proxy.SourceHeader})
	lines := bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n"))
	for i, l := range lines {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		a.addLine(&capture.Line{Time: at, Stream: capture.Stderr, Text: l}, at)
	}
	a.flushAll()
	var out bytes.Buffer
	for i, d := range rec.docs {
		checkContract(t, d)
		out.WriteString("# _id " + rec.ids[i] + "\n")
		if err := json.Indent(&out, d, "", "  "); err != nil {
			t.Fatalf("%v: %s", err, d)
		}
		out.WriteString("\n\n")
	}
	return out.Bytes()
}

// diffLines shows the first lines where want and got differ.
func diffLines(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl + "\n")
			shown++
		}
	}
	return b.String()
}
