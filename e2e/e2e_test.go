package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/examples/openreplaystub"
	"github.com/replaylink/replaylink/internal/estest"
)

// openReplayIndex is the index OpenReplay's backend searches, whatever its
// "Indexes" setting says; the test isolates itself by fresh session ids.
const openReplayIndex = "logs"

// searchDeadline is how soon after the failing response the error must be
// found by OpenReplay's query (replaylink runs with a short flush interval).
const searchDeadline = 5 * time.Second

// TestEndToEnd is the whole path a user relies on: OpenReplay's real tracker
// in a real browser starts a session (against a stand-in for OpenReplay's
// ingest that signs real-format tokens), the page calls the Flask example
// through `replaylink run`, the app raises, and OpenReplay's own query on the
// real search node finds the error with the session's id; the session page
// on replaylink's admin listener shows it.
func TestEndToEnd(t *testing.T) {
	needChromium(t)
	frontend := needBundle(t)
	needPython(t, "flask")
	esURL := estest.URL(t)

	bin := buildReplaylink(t)
	stub := openreplaystub.New(testSecret)
	ingest := httptest.NewServer(stub)
	t.Cleanup(ingest.Close)
	pages := serveDir(t, frontend)

	rl := startReplaylink(t, bin, esURL, filepath.Join(repoRoot(t), "examples", "flask"), "python3", "app.py")
	b := startBrowser(t)

	for _, tc := range []struct{ mode, source string }{
		{"token", "token"},   // zero code: the tracker's own header, verified with the secret
		{"header", "header"}, // the guide's manual openReplaySession.id header
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, st := runPage(ctx, t, b, pageURL(pages.URL, tc.mode, ingest.URL, rl.proxy))
			if len(st.Calls) != 2 || st.Calls[0].Status != 200 || st.Calls[1].Status != 500 {
				t.Fatalf("page calls through replaylink = %+v, want /api/endpoint 200 then /api/cart 500\npage log:\n%s\nreplaylink:\n%s",
					st.Calls, b.Logs(), rl.output())
			}
			failedAt := time.UnixMilli(st.Calls[1].At) // the browser got the 500 (same machine, same clock)
			id, err := strconv.ParseUint(st.SessionID, 10, 64)
			if err != nil {
				t.Fatalf("session id %q: %v", st.SessionID, err)
			}
			if _, ok := stub.Session(id); !ok {
				t.Fatalf("session %d was not issued by the ingest stand-in", id)
			}
			t.Cleanup(func() { deleteSession(t, esURL, st.SessionID) })

			hits, found := waitForError(t, esURL, st.SessionID, failedAt.Add(searchDeadline))
			if !found {
				t.Fatalf("OpenReplay's query found no error document with the traceback for session %s within %s of the failing response; it found %d documents:\n%s\nreplaylink:\n%s",
					st.SessionID, searchDeadline, len(hits), dump(hits), rl.output())
			}
			checkDocuments(t, hits, st.SessionID, tc.source, failedAt)
			if t.Failed() {
				t.Logf("documents of the session:\n%s", dump(hits))
			}

			// The session page on the admin listener, as a person sees it.
			if err := p.navigate(ctx, rl.admin+"/sessions/"+st.SessionID); err != nil {
				t.Fatal(err)
			}
			var text string
			if err := p.eval(ctx, "document.body.innerText", &text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{st.SessionID, "/api/cart", "500", "KeyError"} {
				if !strings.Contains(text, want) {
					t.Errorf("session page lacks %q; it shows:\n%s", want, text)
				}
			}
			png, err := p.screenshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(artifactDir(t), "session-page-"+tc.mode+".png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("session page screenshot: %s", shot)
		})
	}
}

// TestEndToEndGunicorn runs the README's production variant, the same app
// behind gunicorn under `replaylink run`, with a plain HTTP client standing
// in for the page (the browser path is TestEndToEnd's).
func TestEndToEndGunicorn(t *testing.T) {
	needPython(t, "flask", "gunicorn")
	esURL := estest.URL(t)
	bin := buildReplaylink(t)

	// gunicorn binds the port replaylink's --upstream names; python3 -m
	// gunicorn avoids depending on where pip put the script.
	upstream := freeAddr(t)
	rl := startReplaylinkUpstream(t, bin, esURL, upstream, filepath.Join(repoRoot(t), "examples", "flask"),
		"python3", "-m", "gunicorn", "--bind", upstream, "--workers", "1", "app:app")

	sessionID := strconv.FormatUint(uint64(time.Now().UnixNano())%9e18+1e18, 10)
	t.Cleanup(func() { deleteSession(t, esURL, sessionID) })
	req, _ := http.NewRequest(http.MethodGet, rl.proxy+"/api/cart", nil)
	req.Header.Set("openReplaySession.id", sessionID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	failedAt := time.Now()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("GET /api/cart through replaylink: %d, want 500", resp.StatusCode)
	}
	hits, found := waitForError(t, esURL, sessionID, failedAt.Add(searchDeadline))
	if !found {
		t.Fatalf("no error document with the traceback for session %s within %s; found:\n%s\nreplaylink:\n%s",
			sessionID, searchDeadline, dump(hits), rl.output())
	}
	t.Logf("found after %s", time.Since(failedAt))
	checkDocuments(t, hits, sessionID, "header", failedAt)
}

// buildReplaylink builds the binary once per test run, into a temporary
// directory that TestMain removes.
// REPLAYLINK_E2E_BINARY names an already built binary to use instead.
func buildReplaylink(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("REPLAYLINK_E2E_BINARY"); bin != "" {
		return bin
	}
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "replaylink-e2e-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		build.bin = filepath.Join(dir, "replaylink")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/replaylink")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/replaylink: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

var build struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// replaylinkProc is a running `replaylink run`.
type replaylinkProc struct {
	proxy, admin string // base URLs
	out          *syncBuffer
}

func (r *replaylinkProc) output() string { return r.out.String() }

// startReplaylink runs `replaylink run -- CMD` in front of the Flask example
// started by the dev server (PORT tells it where to listen).
func startReplaylink(t *testing.T, bin, esURL, dir string, command ...string) *replaylinkProc {
	t.Helper()
	upstream := freeAddr(t)
	_, port, _ := strings.Cut(upstream, ":")
	return startReplaylinkEnv(t, bin, esURL, upstream, dir, []string{"PORT=" + port}, command...)
}

func startReplaylinkUpstream(t *testing.T, bin, esURL, upstream, dir string, command ...string) *replaylinkProc {
	t.Helper()
	return startReplaylinkEnv(t, bin, esURL, upstream, dir, nil, command...)
}

func startReplaylinkEnv(t *testing.T, bin, esURL, upstream, dir string, env []string, command ...string) *replaylinkProc {
	t.Helper()
	listen, admin := freeAddr(t), freeAddr(t)
	args := append([]string{"run",
		"--listen", listen,
		"--upstream", "http://" + upstream,
		"--admin", admin,
		"--es-url", esURL,
		"--index", openReplayIndex,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"),
		"--flush-interval", "200ms",
		"--service-name", "flask-example",
		"--",
	}, command...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// The secret OpenReplay signs its tokens with, as a user sets it.
	cmd.Env = append(append(os.Environ(), "REPLAYLINK_OPENREPLAY_TOKEN_SECRET="+testSecret, "PYTHONUNBUFFERED=1"), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM as Kubernetes would: replaylink stops the app and flushes.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("replaylink output:\n%s", out.String())
		}
	})
	rl := &replaylinkProc{proxy: "http://" + listen, admin: "http://" + admin, out: out}
	// /readyz says an upstream answers: the app is up behind replaylink.
	waitReady(t, rl.admin, exited, out, 30*time.Second)
	return rl
}

// searchHit is one hit of OpenReplay's query.
type searchHit struct {
	ID     string         `json:"_id"`
	Index  string         `json:"_index"`
	Source map[string]any `json:"_source"`
}

// openReplayQuery is exactly what OpenReplay's backend sends for a session.
func openReplayQuery(esURL, sessionID string) ([]searchHit, error) {
	body, _ := json.Marshal(map[string]any{
		"query": map[string]any{"match_phrase": map[string]any{"message": "openReplaySession.id=" + sessionID}},
		"size":  1000,
	})
	resp, err := http.Post(esURL+"/"+openReplayIndex+"/_search", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusServiceUnavailable {
		// No index yet, or one just created whose shard is not started yet.
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("search: %d %s", resp.StatusCode, raw)
	}
	var r struct {
		Hits struct {
			Hits []searchHit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return r.Hits.Hits, nil
}

// deleteSession removes the test's documents from the shared logs index.
func deleteSession(t *testing.T, esURL, sessionID string) {
	body, _ := json.Marshal(map[string]any{"query": map[string]any{"bool": map[string]any{"should": []any{
		map[string]any{"term": map[string]any{"openReplaySession.id": sessionID}},
		map[string]any{"match_phrase": map[string]any{"message": "openReplaySession.id=" + sessionID}},
	}}}})
	resp, err := http.Post(esURL+"/"+openReplayIndex+"/_delete_by_query?refresh=true&conflicts=proceed", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Logf("cleaning up session %s: %v", sessionID, err)
		return
	}
	resp.Body.Close()
}

// waitForError polls OpenReplay's query (no refresh forced: what OpenReplay
// sees) until an error document with the traceback is among the hits.
func waitForError(t *testing.T, esURL, sessionID string, deadline time.Time) ([]searchHit, bool) {
	t.Helper()
	for {
		hits, err := openReplayQuery(esURL, sessionID)
		if err != nil {
			t.Fatal(err)
		}
		if tracebackDoc(hits) != nil {
			return hits, true
		}
		if time.Now().After(deadline) {
			return hits, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tracebackDoc is the error document that carries Flask's traceback.
func tracebackDoc(hits []searchHit) map[string]any {
	for _, h := range hits {
		if field(h.Source, "level") != "error" {
			continue
		}
		if strings.Contains(field(h.Source, "message")+field(h.Source, "error.stack_trace"), "Traceback (most recent call last)") {
			return h.Source
		}
	}
	return nil
}

// checkDocuments asserts OpenReplay's contract on what the query found.
func checkDocuments(t *testing.T, hits []searchHit, sessionID, source string, failedAt time.Time) {
	t.Helper()
	doc := tracebackDoc(hits)
	marker := "[openReplaySession.id=" + sessionID + "]"
	msg := field(doc, "message")
	if !strings.HasPrefix(msg, marker+" ") {
		t.Errorf("message %q does not start with %q", msg, marker+" ")
	}
	if got := field(doc, "openReplaySession.id"); got != sessionID {
		t.Errorf("openReplaySession.id = %q, want %q", got, sessionID)
	}
	if tags := list(doc, "tags"); !contains(tags, "error") {
		t.Errorf("tags = %v, want error among them", tags)
	}
	ts, err1 := time.Parse(time.RFC3339Nano, field(doc, "@timestamp"))
	utc, err2 := time.Parse(time.RFC3339Nano, field(doc, "utc_time"))
	if err1 != nil || err2 != nil {
		t.Errorf("@timestamp %q / utc_time %q: want RFC 3339 (%v, %v)", field(doc, "@timestamp"), field(doc, "utc_time"), err1, err2)
	} else {
		if !ts.Equal(utc) {
			t.Errorf("@timestamp %s and utc_time %s differ", ts, utc)
		}
		if d := failedAt.Sub(ts); d < 0 || d > 30*time.Second {
			t.Errorf("@timestamp %s is not just before the failing response (%s)", ts, failedAt)
		}
	}
	stack := field(doc, "error.stack_trace") + "\n" + msg
	for _, want := range []string{"Traceback (most recent call last)", `app.py", line`, "in api_cart", "KeyError: 'cart_id'"} {
		if !strings.Contains(stack, want) {
			t.Errorf("the error document lacks %q of Flask's traceback", want)
		}
	}
	if got := field(doc, "error.type"); got != "KeyError" {
		t.Errorf("error.type = %q, want KeyError", got)
	}
	// The access event of the failing request is there too, as an error.
	var access map[string]any
	for _, h := range hits {
		if field(h.Source, "url.path") == "/api/cart" && field(h.Source, "http.response.status_code") == "500" {
			access = h.Source
		}
	}
	if access == nil {
		t.Errorf("no access document for GET /api/cart -> 500 among the session's documents")
	} else {
		if field(access, "level") != "error" || !contains(list(access, "tags"), "error") {
			t.Errorf("the access document of the 500 has level %q tags %v, want error", field(access, "level"), list(access, "tags"))
		}
		// The request's session came from where the page put it.
		if got := field(access, "openReplaySession.source"); got != source {
			t.Errorf("access document: openReplaySession.source = %q, want %q", got, source)
		}
	}
	// A backend line is tied to the request by evidence or by time, never guessed.
	if !reflect.DeepEqual(doc, access) {
		switch got := field(doc, "openReplaySession.source"); got {
		case "window", "request-id", "trace-id", "marker":
		default:
			t.Errorf("traceback document: openReplaySession.source = %q, want how it was attributed (window, request-id, trace-id)", got)
		}
	}
	// Every document found satisfies the player: lowercase level, message, @timestamp.
	for _, h := range hits {
		switch field(h.Source, "level") {
		case "error", "warning", "info", "debug":
		default:
			t.Errorf("document %s has level %q; OpenReplay's player needs error, warning, info or debug", h.ID, field(h.Source, "level"))
		}
		if field(h.Source, "@timestamp") == "" || !strings.Contains(field(h.Source, "message"), marker) {
			t.Errorf("document %s lacks @timestamp or the session marker", h.ID)
		}
	}
}

// field reads a dotted name from a document that spells it flat
// ("error.type") or nested ({"error":{"type":...}}), as Elasticsearch allows.
func field(doc map[string]any, name string) string {
	v, ok := lookupField(doc, name)
	if !ok || v == nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

func lookupField(doc map[string]any, name string) (any, bool) {
	if doc == nil {
		return nil, false
	}
	if v, ok := doc[name]; ok {
		return v, true
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if sub, ok := doc[name[:i]].(map[string]any); ok {
			if v, ok := lookupField(sub, name[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func list(doc map[string]any, name string) []string {
	v, _ := lookupField(doc, name)
	var out []string
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
	case string:
		out = []string{v}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func dump(hits []searchHit) string {
	var b strings.Builder
	for _, h := range hits {
		raw, _ := json.Marshal(h.Source)
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// syncBuffer collects a child's output for failure messages (bounded).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() < 1<<20 {
		s.buf.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
