package faults

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// adminGet sends a GET to the admin listener with an optional bearer token
// and Host, and returns status, content type and body.
func adminGet(t testing.TB, in *instance, path, token, host string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.Admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestSessionPageEscapesAndRequiresTheToken: a backend log line and a 5xx
// body carrying <script> show as text on the session and request pages;
// with --admin-token, lookup and ingest need it, health and metrics do not.
func TestSessionPageEscapesAndRequiresTheToken(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	const token = "admin-token-for-the-page-test"
	const session = "5550002"
	dir := t.TempDir()
	addr := estest.FreeAddr(t)
	in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
		"--upstream", "http://" + addr, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
		"--flush-interval", "200ms", "--admin-token", token,
	}})
	waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK })
	for _, p := range []string{"/log?kind=script", "/fail"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+in.Listen+p, nil)
		req.Header.Set("openReplaySession.id", session)
		req.Header.Set("X-Request-ID", "page-"+strings.Trim(p[1:5], "?"))
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// The JSON API returns the text as it was logged.
	var logs struct {
		Count int `json:"count"`
		Logs  []struct {
			Message string `json:"message"`
		} `json:"logs"`
	}
	waitFor(10*time.Second, func() bool {
		st, _, body := adminGet(t, in, "/sessions/"+session+"/logs", token, "")
		json.Unmarshal([]byte(body), &logs)
		joined := ""
		for _, l := range logs.Logs {
			joined += l.Message + "\n"
		}
		return st == 200 && strings.Contains(joined, "<script>alert('log')</script>") && strings.Contains(joined, "-> 500")
	})
	r.add("session_docs", logs.Count)
	st, ct, body := adminGet(t, in, "/sessions/"+session+"/logs", token, "")
	if st != 200 || !strings.HasPrefix(ct, "application/json") || !strings.Contains(body, `alert('log')`) {
		t.Fatalf("/sessions/%s/logs: %d %s, want JSON holding the logged <script> line: %.500s", session, st, ct, body)
	}

	// The HTML pages show it as text.
	for _, page := range []string{"/sessions/" + session, "/requests/page-fail"} {
		st, ct, body := adminGet(t, in, page, token, "")
		if st != 200 || !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: %d %s, want the HTML page", page, st, ct)
			continue
		}
		if strings.Contains(body, "<script>alert(") {
			t.Errorf("%s holds a live <script> from a log or a response body:\n%.2000s", page, body)
		}
		// The session page shows the backend's line; the request page
		// need not show the response body, but must not run it.
		if strings.HasPrefix(page, "/sessions/") && !strings.Contains(body, "&lt;script&gt;alert(") {
			t.Errorf("%s does not show the <script> text escaped:\n%.2000s", page, body)
		}
	}

	// The token guards lookup and ingest, not health and metrics.
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/sessions/" + session, "", 401},
		{"GET", "/sessions/" + session + "/logs", "wrong-token", 401},
		{"GET", "/requests/page-fail", "", 401},
		{"POST", "/ingest", "", 401},
		{"POST", "/ingest", "wrong-token", 401},
		{"GET", "/livez", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 200},
	} {
		req, _ := http.NewRequest(c.method, "http://"+in.Admin+c.path, strings.NewReader(`{"message":"x"}`+"\n"))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with token %q: %d, want %d", c.method, c.path, c.token, resp.StatusCode, c.want)
		}
	}
}

// TestAdminIsLoopbackByDefault: the admin listener defaults to loopback;
// on a non-loopback address without a token, lookup and ingest are off
// (health and metrics stay on); on loopback without a token, a foreign
// Host (DNS rebinding) is refused.
func TestAdminIsLoopbackByDefault(t *testing.T) {
	t.Parallel()
	help, _ := exec.Command(replaylinkBin, "serve", "--help").CombinedOutput()
	if !strings.Contains(string(help), "--admin (default 127.0.0.1:9090)") {
		t.Errorf("serve --help does not show a loopback default for --admin:\n%s", help)
	}
	b := startBackend(t, 0)
	dir := t.TempDir()
	args := []string{"--upstream", b.URL, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson")}

	open := startReplaylink(t, procOptions{command: "serve", args: append([]string{"--admin", "0.0.0.0:0"}, args...)})
	open.Admin = strings.Replace(open.Admin, "[::]", "127.0.0.1", 1)
	open.Admin = strings.Replace(open.Admin, "0.0.0.0", "127.0.0.1", 1)
	if st, _, _ := adminGet(t, open, "/sessions/1", "", ""); st != http.StatusForbidden {
		t.Errorf("lookup on 0.0.0.0 without a token: %d, want 403", st)
	}
	if st, _, _ := adminGet(t, open, "/metrics", "", ""); st != http.StatusOK {
		t.Errorf("metrics on 0.0.0.0: %d, want 200", st)
	}
	if !strings.Contains(open.stderr.String(), "lookup and ingest are off") {
		t.Errorf("no warning that lookup and ingest are off on a non-loopback admin address")
	}

	dir2 := t.TempDir()
	local := startReplaylink(t, procOptions{command: "serve", args: []string{"--upstream", b.URL,
		"--spool-dir", filepath.Join(dir2, "spool"), "--output", filepath.Join(dir2, "docs.ndjson")}})
	if st, _, _ := adminGet(t, local, "/sessions/1", "", ""); st != http.StatusOK {
		t.Errorf("lookup on loopback without a token: %d, want 200", st)
	}
	if st, _, _ := adminGet(t, local, "/sessions/1", "", "evil.example:9090"); st != http.StatusForbidden {
		t.Errorf("lookup on loopback with Host evil.example: %d, want 403 (DNS rebinding)", st)
	}
}
