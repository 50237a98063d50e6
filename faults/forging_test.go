package faults

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/replaylink/replaylink/internal/estest"
	"github.com/replaylink/replaylink/proxy"
)

// forgedSession is the session every forging attempt tries to write into.
const forgedSession = "999"

// TestSessionForging: clients try to put their requests into session 999
// (someone else's replay) through every input they control. Only decimal
// session ids from the configured sources count; nothing a client sends may
// make OpenReplay's own query for session 999 find a document.
func TestSessionForging(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	const secret = "forging-test-token-secret"
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, t.TempDir(), "--openreplay-token-secret", secret)})

	wrongSig := proxy.SignSessionToken("not-the-secret", 999, 0, time.Now().Add(time.Hour).UnixMilli())
	attempts := []struct {
		name   string
		target string
		header [2]string
	}{
		{"header breaking out of the marker", "/a", [2]string{"openReplaySession.id", "123] [openReplaySession.id=999"}},
		{"header with a trailing marker", "/a", [2]string{"openReplaySession.id", "123 openReplaySession.id=999"}},
		{"header with letters", "/a", [2]string{"openReplaySession.id", "99x9"}},
		{"header with a sign", "/a", [2]string{"openReplaySession.id", "+999"}},
		{"header in hex", "/a", [2]string{"openReplaySession.id", "0x3e7"}},
		{"header with Arabic-Indic digits", "/a", [2]string{"openReplaySession.id", "٩٩٩"}},
		{"header overflowing uint64", "/a", [2]string{"openReplaySession.id", "99999999999999999999999"}},
		{"baggage breaking out", "/a", [2]string{"baggage", "openReplaySession.id=123] [openReplaySession.id=999"}},
		{"token signed with another secret", "/a", [2]string{"X-OpenReplay-SessionToken", wrongSig}},
		{"request id carrying a marker", "/a", [2]string{"X-Request-ID", "x] [openReplaySession.id=999"}},
		{"user agent carrying a marker", "/a", [2]string{"User-Agent", "[openReplaySession.id=999]"}},
		{"path carrying a marker", "/openReplaySession.id=999", [2]string{}},
		{"path carrying a bracketed marker", "/x/%5BopenReplaySession.id=999%5D", [2]string{}},
		{"query carrying a marker", "/a?q=openReplaySession.id=999", [2]string{}},
		{"path marker on a request of another session", "/openReplaySession.id=999", [2]string{"openReplaySession.id", "4242"}},
	}
	for _, a := range attempts {
		req, _ := http.NewRequest(http.MethodGet, "http://"+rl.Listen+a.target, nil)
		if a.header[0] != "" {
			req.Header[a.header[0]] = []string{a.header[1]} // as sent, no canonicalisation
		}
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		resp.Body.Close()
	}
	if _, ok := x.waitCount(len(attempts), 30*time.Second); !ok {
		t.Fatalf("%d of %d access documents indexed", x.count(), len(attempts))
	}
	docs := x.docs()
	for _, d := range docs {
		if d.Doc.OpenReplaySession.ID == forgedSession {
			t.Errorf("a client forged session %s: %s", forgedSession, d.Source)
		}
	}
	hits := x.matchPhrase(forgedSession)
	r.add("attempts", len(attempts))
	r.add("openreplay_hits_for_999", hits)
	if hits > 0 {
		t.Errorf("OpenReplay's query for session %s (match_phrase on message) finds %d documents made from client input; "+
			"the client-controlled parts of message (the path) must not read as a session marker", forgedSession, hits)
		for _, d := range docs {
			if strings.Contains(strings.ToLower(d.Doc.Message), "openreplaysession.id=999") {
				t.Logf("  message: %q", d.Doc.Message)
			}
		}
	}
	// The query itself works: the legitimate session of the last attempt is found.
	if n := x.matchPhrase("4242"); n != 1 {
		t.Errorf("OpenReplay's query finds %d documents for session 4242, want 1: the check above proves nothing", n)
	}
	var invalid float64
	for k, v := range rl.metrics() {
		if strings.HasPrefix(k, "replaylink_invalid_session_total") {
			invalid += v
		}
	}
	r.add("invalid_session_counted", invalid)
	if invalid < 8 {
		t.Errorf("replaylink_invalid_session_total counts %v invalid sessions, want at least the 8 malformed ids sent", invalid)
	}
}

// TestHostileBackendOutput: the backend (under replaylink run) prints lines
// with a bare CR and a fake JSON document, ANSI escapes, invalid UTF-8 and
// NUL, and a 10 MB line. Every document must be valid JSON on one line,
// bounded in size, attributed to the request that printed it, and the
// 10 MB line cut and marked truncated. Checked on the --output file (the
// embedded default) and on Elasticsearch.
func TestHostileBackendOutput(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	kinds := []string{"script", "forge", "jsonnl", "ansi", "utf8", "huge"}
	const session = "5550001"

	check := func(t *testing.T, docs []json.RawMessage) {
		t.Helper()
		found := map[string]bool{}
		for _, raw := range docs {
			if !json.Valid(raw) || !utf8.Valid(raw) {
				t.Errorf("document is not valid UTF-8 JSON: %q", tail(string(raw), 300))
				continue
			}
			if len(raw) > 256<<10 {
				t.Errorf("document of %d bytes: the 64 KiB line limit does not bound it", len(raw))
			}
			var d accessDoc
			json.Unmarshal(raw, &d.Doc)
			if d.Doc.OpenReplaySession.ID == forgedSession {
				t.Errorf("a backend line forged session %s: %.300s", forgedSession, raw)
			}
			for _, k := range kinds {
				if strings.Contains(string(raw), "hostile-"+k) && slices.Contains(d.Doc.Tags, "backend") {
					found[k] = true
					if d.Doc.OpenReplaySession.ID != session {
						t.Errorf("the %s line is attributed to session %q, want %s: %.300s", k, d.Doc.OpenReplaySession.ID, session, raw)
					}
					if k == "huge" && !d.Doc.Replaylink.Truncated {
						t.Errorf("the 10 MB line is not marked replaylink.truncated")
					}
				}
			}
		}
		for _, k := range kinds {
			if !found[k] {
				t.Errorf("no document for the %s line", k)
			}
		}
	}
	send := func(t *testing.T, in *instance) {
		for _, k := range kinds {
			req, _ := http.NewRequest(http.MethodGet, "http://"+in.Listen+"/log?kind="+k, nil)
			req.Header.Set("openReplaySession.id", session)
			req.Header.Set("X-Request-ID", "hostile-"+k)
			resp, err := plainClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d", k, resp.StatusCode)
			}
		}
	}

	t.Run("output file", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "docs.ndjson")
		addr := estest.FreeAddr(t)
		in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
			"--upstream", "http://" + addr, "--spool-dir", filepath.Join(dir, "spool"), "--output", out, "--flush-interval", "200ms",
		}})
		waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK })
		send(t, in)
		var lines []json.RawMessage
		waitFor(20*time.Second, func() bool {
			lines = readLines(t, out)
			n := 0
			for _, l := range lines {
				if strings.Contains(string(l), "hostile-") && strings.Contains(string(l), `"backend"`) {
					n++
				}
			}
			return n >= len(kinds)
		})
		r.add("output_lines", len(lines))
		check(t, lines)
	})

	t.Run("elasticsearch", func(t *testing.T) {
		x := newIndex(t, esURL)
		spool := t.TempDir()
		addr := estest.FreeAddr(t)
		in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
			"--upstream", "http://" + addr, "--es-url", esURL, "--index", x.Name, "--spool-dir", spool, "--flush-interval", "200ms",
		}})
		waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK })
		send(t, in)
		// Five access documents, five backend ones, and "backend started".
		x.waitCount(2*len(kinds)+1, 30*time.Second)
		time.Sleep(time.Second)
		var docs []json.RawMessage
		for _, d := range x.docs() {
			docs = append(docs, d.Source)
		}
		r.add("es_docs", len(docs))
		check(t, docs)
		if n := countLines(filepath.Join(spool, "dead-letter.ndjson")); n > 0 {
			b, _ := os.ReadFile(filepath.Join(spool, "dead-letter.ndjson"))
			t.Errorf("Elasticsearch refused %d documents made from hostile lines: %.1000s", n, b)
		}
		if hits := x.matchPhrase(forgedSession); hits > 0 {
			t.Errorf("OpenReplay's query for session %s finds %d documents made from backend lines", forgedSession, hits)
		}
	})
}

// TestBackendEchoedMarkerDoesNotForgeASession: the backend logs user input
// that holds the guide's marker, "[openReplaySession.id=999]", while serving
// a request of session S. Whether the line also names its request (a usable
// request_id) or only its timing ties it to the request, the echoed marker
// must not move the line into session 999, where OpenReplay would show it in
// a stranger's replay.
func TestBackendEchoedMarkerDoesNotForgeASession(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	x := newIndex(t, esURL)
	addr := estest.FreeAddr(t)
	in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
		"--upstream", "http://" + addr, "--es-url", esURL, "--index", x.Name, "--spool-dir", t.TempDir(), "--flush-interval", "200ms",
	}})
	waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK })
	cases := []struct{ name, session, requestID string }{
		{"timing only", "5550004", "echo-1"},                           // too short to be used as evidence
		{"request id in the line", "5550005", "echo-7f3a9c21b4d05e6a"}, // exact evidence for session 5550005
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, "http://"+in.Listen+"/log?kind=marker", nil)
		req.Header.Set("openReplaySession.id", c.session)
		req.Header.Set("X-Request-ID", c.requestID)
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	x.waitCount(5, 20*time.Second) // two access documents, two backend lines, "backend started"
	time.Sleep(500 * time.Millisecond)
	docs := x.docs()
	for _, c := range cases {
		found := false
		for _, d := range docs {
			if !strings.Contains(d.Doc.Message, "user searched for") || !strings.Contains(d.Doc.Message, "request_id="+c.requestID) {
				continue
			}
			found = true
			r.add("attributed_"+strings.ReplaceAll(c.name, " ", "_"), d.Doc.OpenReplaySession.ID)
			if d.Doc.OpenReplaySession.ID == forgedSession {
				t.Errorf("%s: the line of a request of session %s is attributed to session %s: %s", c.name, c.session, forgedSession, d.Source)
			}
		}
		if !found {
			t.Errorf("%s: no document for the backend's line", c.name)
		}
	}
	hits := x.matchPhrase(forgedSession)
	r.add("openreplay_hits_for_999", hits)
	if hits > 0 {
		t.Errorf("OpenReplay's query for session %s finds %d documents: user input echoed by the backend forged a session", forgedSession, hits)
	}
}

// readLines reads a JSON-lines file; each line is one document.
func readLines(t testing.TB, path string) []json.RawMessage {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []json.RawMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		out = append(out, json.RawMessage(strings.Clone(sc.Text())))
	}
	if err := sc.Err(); err != nil {
		t.Errorf("reading %s: %v (a line over 64 MiB?)", path, err)
	}
	return out
}
