package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The settings whose zero a package once replaced by its own default, run
// through the binary: each 0 must mean what docs/configuration.md says.

// documents reads --output's documents by their message.
func documents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("document is not JSON: %v\n%s", err, l)
		}
		out = append(out, d)
	}
	return out
}

// sessionOf is a document's openReplaySession.id, "" for none.
func sessionOf(d map[string]any) string {
	s, _ := d["openReplaySession"].(map[string]any)
	id, _ := s["id"].(string)
	return id
}

func documentWith(t *testing.T, docs []map[string]any, text string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if msg, _ := d["message"].(string); strings.Contains(msg, text) {
			return d
		}
	}
	t.Fatalf("no document says %q in %v", text, docs)
	return nil
}

// --mark-info-limit 0: a 200 of a session is not marked (it keeps its
// openReplaySession.id field); a 500 is.
func TestMarkInfoLimitZero(t *testing.T) {
	be := backend(t)
	output := filepath.Join(t.TempDir(), "docs.ndjson")
	in := startServe(t, "--upstream", be.URL, "--output", output, "--mark-info-limit", "0")
	const session = "7204916803563248"
	request(t, in, "/api/hello", session)
	request(t, in, "/api/cart", session)
	if code := in.stop(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, in.errOut)
	}
	docs := documents(t, output)
	ok, failed := documentWith(t, docs, "/api/hello"), documentWith(t, docs, "/api/cart")
	if msg := ok["message"].(string); strings.Contains(msg, "[openReplaySession.id=") || sessionOf(ok) != session {
		t.Errorf("the 200 with --mark-info-limit 0: message %q, session %q", msg, sessionOf(ok))
	}
	if msg := failed["message"].(string); !strings.HasPrefix(msg, "[openReplaySession.id="+session+"] ") {
		t.Errorf("the 500 is not marked: %q", msg)
	}
}

// --memory-store 0: no recent documents are kept, and a lookup says so
// with the fix instead of failing.
func TestMemoryStoreZero(t *testing.T) {
	be := backend(t)
	in := startServe(t, "--upstream", be.URL, "--output", filepath.Join(t.TempDir(), "docs.ndjson"), "--memory-store", "0")
	const session = "7204916803563249"
	request(t, in, "/api/cart", session)
	out, err := exec.Command(binary, "lookup", session, "--admin", in.admin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--memory-store 0") || !strings.Contains(string(out), "0 documents") {
		t.Errorf("lookup with --memory-store 0: %v\n%s", err, out)
	}
	resp, err := http.Get("http://" + in.admin + "/sessions/" + session)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "nowhere (--memory-store 0 and no --es-url)") {
		t.Errorf("session page with --memory-store 0: %d\n%s", resp.StatusCode, page)
	}
	if code := in.stop(t); code != 0 {
		t.Errorf("exit code %d\n%s", code, in.errOut)
	}
}

// lateBackend is a Python backend that prints "late line" 300ms after it
// answered a request.
const lateBackend = `
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        threading.Timer(0.3, lambda: print("late line", flush=True)).start()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// --attribution-grace 0: a line printed after its request ended is no
// longer the request's; with a grace that covers it, it is (the backend's
// hooks are off, so only the window attributes it).
func TestAttributionGraceZero(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3 for the backend")
	}
	for _, tc := range []struct {
		grace      string
		attributed bool
	}{{"1s", true}, {"0", false}} {
		t.Run(tc.grace, func(t *testing.T) {
			be := freeAddr(t)
			output := filepath.Join(t.TempDir(), "docs.ndjson")
			out, errOut := new(bytes.Buffer), new(bytes.Buffer)
			in := &instance{listen: freeAddr(t), admin: freeAddr(t), out: out, errOut: errOut}
			in.cmd = exec.Command(binary, "run", "--listen", in.listen, "--admin", in.admin, "--spool-dir", t.TempDir(),
				"--upstream", "http://"+be, "--output", output, "--hooks", "off", "--attribution-grace", tc.grace,
				"--", "python3", "-c", lateBackend, strings.Split(be, ":")[1])
			in.cmd.Stdout, in.cmd.Stderr = out, errOut
			in.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			in.start(t)
			const session = "7204916803563250"
			request(t, in, "/api/hello", session)
			time.Sleep(time.Second) // the line comes 300ms after the response
			in.stop(t)
			line := documentWith(t, documents(t, output), "late line")
			if got := sessionOf(line) == session; got != tc.attributed {
				t.Errorf("--attribution-grace %s: the late line's session is %q, want attributed %v\n%v", tc.grace, sessionOf(line), tc.attributed, line)
			}
		})
	}
}
