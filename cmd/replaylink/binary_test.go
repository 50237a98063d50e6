package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// These tests run the real binary as users do: serve in front of a local
// backend, then lookup (the command, the API, the page) against it, in the
// embedded default and against the real search node.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replaylink-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "replaylink")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building replaylink: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type instance struct {
	cmd           *exec.Cmd
	listen, admin string
	out, errOut   fmt.Stringer // what the process wrote to stdout and stderr
}

// startServe starts `replaylink serve` and waits until its admin listener is ready.
func startServe(t *testing.T, extra ...string) *instance {
	t.Helper()
	in := &instance{listen: freeAddr(t), admin: freeAddr(t)}
	args := append([]string{"serve", "--listen", in.listen, "--admin", in.admin, "--spool-dir", t.TempDir(), "--flush-interval", "100ms"}, extra...)
	out, errOut := new(bytes.Buffer), new(bytes.Buffer)
	in.out, in.errOut = out, errOut
	in.cmd = exec.Command(binary, args...)
	in.cmd.Stdout, in.cmd.Stderr = out, errOut
	in.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	in.start(t)
	return in
}

// start starts in.cmd and waits until its admin listener is ready.
func (in *instance) start(t *testing.T) {
	t.Helper()
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.cmd.Process.Kill(); in.cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + in.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replaylink not ready: %v\n%s", err, in.errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) stop(t *testing.T) int {
	t.Helper()
	in.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- in.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("replaylink did not stop on SIGTERM\n%s", in.errOut)
	}
	return in.cmd.ProcessState.ExitCode()
}

func backend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/cart" {
			http.Error(w, "KeyError: 'cart_id'", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func request(t *testing.T, in *instance, path, session string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.listen+path, nil)
	req.Header.Set("openReplaySession.id", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// lookupCLI runs `replaylink lookup` until its output satisfies ok.
func lookupCLI(t *testing.T, ok func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command(binary, append([]string{"lookup"}, args...)...).CombinedOutput()
		if ok(string(out)) {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replaylink lookup %q never satisfied the test; last output:\n%s", args, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServeEmbeddedDefaultAndLookup(t *testing.T) {
	be := backend(t)
	output := filepath.Join(t.TempDir(), "docs.ndjson")
	in := startServe(t, "--upstream", be.URL, "--output", output)
	const session = "7204916803563247"
	request(t, in, "/api/hello", session)
	request(t, in, "/api/cart", session)

	table := lookupCLI(t, func(s string) bool { return strings.Contains(s, "/api/cart") && strings.Contains(s, "/api/hello") },
		session, "--admin", in.admin)
	if !strings.Contains(table, "error") || !strings.Contains(table, "500") || !strings.Contains(table, "2 documents for session "+session) {
		t.Errorf("lookup table:\n%s", table)
	}
	raw := lookupCLI(t, func(s string) bool { return strings.Contains(s, `"logs"`) }, session, "--admin", in.admin, "--json")
	var ans struct {
		Session string            `json:"session"`
		Count   int               `json:"count"`
		Logs    []json.RawMessage `json:"logs"`
	}
	if err := json.Unmarshal([]byte(raw), &ans); err != nil || ans.Session != session || ans.Count != 2 {
		t.Errorf("lookup --json: %v %+v\n%s", err, ans, raw)
	}

	resp, err := http.Get("http://" + in.admin + "/sessions/" + session)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "/api/cart") || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("session page: %d %s", resp.StatusCode, page)
	}
	resp, err = http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `replaylink_requests_total{class="5xx"} 1`) || strings.Contains(string(metrics), session) {
		t.Errorf("metrics lack the request count or name the session:\n%s", metrics)
	}

	if code := in.stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d\n%s", code, in.errOut)
	}
	docs, err := os.ReadFile(output)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(docs)), "\n")
	if len(lines) != 2 {
		t.Fatalf("--output has %d documents, want 2:\n%s", len(lines), docs)
	}
	for _, l := range lines {
		var d map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("document is not JSON: %v\n%s", err, l)
		}
		if msg, _ := d["message"].(string); !strings.HasPrefix(msg, "[openReplaySession.id="+session+"] ") {
			t.Errorf("message %q lacks the session marker", msg)
		}
	}
}

func TestServeShipsToSearchNodeAndLookupFindsIt(t *testing.T) {
	esURL := estest.URL(t)
	index := fmt.Sprintf("rl-test-cmd-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, esURL+"/"+index, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	be := backend(t)
	in := startServe(t, "--upstream", be.URL, "--es-url", esURL, "--index", index)
	const session = "9182736455463728"
	request(t, in, "/api/cart", session)

	// Straight from the node, as a user without a running replaylink would.
	direct := lookupCLI(t, func(s string) bool { return strings.Contains(s, "/api/cart") },
		session, "--es-url", esURL, "--index", index)
	if !strings.Contains(direct, "1 document for session "+session) {
		t.Errorf("lookup --es-url:\n%s", direct)
	}
	// Through the admin API: the node's copy and the in-memory one are one document.
	merged := lookupCLI(t, func(s string) bool { return strings.Contains(s, "/api/cart") }, session, "--admin", in.admin)
	if !strings.Contains(merged, "1 document for session "+session) {
		t.Errorf("lookup via the admin API (merged with memory):\n%s", merged)
	}
	if code := in.stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d\n%s", code, in.errOut)
	}
}

func TestCheckAndSetupNeedAnElasticsearchURL(t *testing.T) {
	for _, cmd := range []string{"check", "setup"} {
		out, err := exec.Command(binary, cmd).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--es-url") {
			t.Errorf("%s without --es-url: %v\n%s", cmd, err, out)
		}
	}
}
