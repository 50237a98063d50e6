// Package e2e holds the end-to-end tests: a real browser session with
// OpenReplay's real tracker, the Flask example behind replaylink, a real
// search node, and OpenReplay's own query finding the error. What they need
// installed is set up by deps.sh (chromium, Flask, the page's npm packages
// and bundle). Outside CI a missing piece skips a test; under CI=true it
// fails it, so a broken machine can never pass as green.
package e2e

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// need skips the test (fails it under CI) when a prerequisite is missing.
func need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("end-to-end test needs %s (run e2e/deps.sh)", what)
	}
	t.Skipf("needs %s (run e2e/deps.sh)", what)
}

// repoRoot is the module's root directory (tests run in e2e/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func needChromium(t testing.TB) {
	t.Helper()
	need(t, fileExists(chromiumPath), "Debian's chromium at "+chromiumPath+" (apt-get install chromium)")
}

// needBundle returns the directory of the built frontend example.
func needBundle(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples", "frontend")
	need(t, fileExists(filepath.Join(dir, "dist", "bundle.js")), "the frontend bundle (cd examples/frontend && npm ci && npm run build)")
	return dir
}

// needPython checks that python3 can import the named modules.
func needPython(t testing.TB, modules ...string) {
	t.Helper()
	for _, m := range modules {
		err := exec.Command("python3", "-c", "import "+m).Run()
		need(t, err == nil, "python3 with "+m+" (pip install -r examples/flask/requirements.txt)")
	}
}

// freeAddr returns a loopback address that was free a moment ago, for the
// child processes that take a port number rather than a listener.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveDir serves a directory over HTTP on a loopback port.
func serveDir(t testing.TB, dir string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv
}

// artifactDir is where screenshots go: $REPLAYLINK_ARTIFACTS, else artifacts/e2e at the root.
func artifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("REPLAYLINK_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "artifacts")
	}
	dir = filepath.Join(dir, "e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
