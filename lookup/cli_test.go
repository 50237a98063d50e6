package lookup

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/admin"
)

func runCLI(t *testing.T, o CLIOptions) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := RunCLI(context.Background(), &out, &errOut, o)
	return code, out.String(), errOut.String()
}

func TestCLIThroughAdminAPI(t *testing.T) {
	rec := newStore(sampleSession("7391048572913", t0)...)
	// A line that tries to drive the terminal.
	rec.Add([]byte("ansi"), []byte(`{"message":"[openReplaySession.id=7391048572913] \u001b[2J\u001b]0;owned\u0007cleared","utc_time":"2025-03-14T09:26:59Z","level":"info","openReplaySession.id":"7391048572913"}`))
	p, _ := admin.NewPolicy("127.0.0.1:0", "tok", false)
	srv := httptest.NewServer(p.Protect(NewHandler(Options{MemoryStore: rec})))
	defer srv.Close()

	code, out, errOut := runCLI(t, CLIOptions{Limit: 1000, Session: "7391048572913", AdminURL: srv.URL, AdminToken: "tok"})
	if code != CLIOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 9 || !strings.HasPrefix(lines[0], "TIME (UTC)") || !strings.HasPrefix(lines[8], "7 documents for session 7391048572913") {
		t.Fatalf("table:\n%s", out)
	}
	for i, want := range [][]string{
		3: {"2025-03-14 09:26:53.150", "warning", "slow disk: 120 ms"},
		4: {"2025-03-14 09:26:53.400", "error", "500", "POST /api/checkout", "POST /api/checkout -> 500 (48.9 ms) KeyError: 'cart_id'"},
	} {
		if got := strings.Fields(lines[i]); want != nil && !strings.Contains(strings.Join(got, " "), strings.Join(want, " ")) {
			t.Errorf("row %d is %q, want the columns %q", i, lines[i], want)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("control characters reached the terminal: %q", out)
	}
	if strings.Contains(out, "[openReplaySession.id=") {
		t.Error("the table repeats the session marker")
	}

	code, out, _ = runCLI(t, CLIOptions{Limit: 1000, Session: "7391048572913", AdminURL: srv.URL, AdminToken: "tok", JSON: true, Level: "error"})
	var a answer
	if code != CLIOK || json.Unmarshal([]byte(out), &a) != nil || a.Count != 2 || a.Session != "7391048572913" {
		t.Fatalf("--json --level error: exit %d, count %d:\n%s", code, a.Count, out)
	}

	code, _, errOut = runCLI(t, CLIOptions{Limit: 1000, Session: "7391048572913", AdminURL: srv.URL, AdminToken: "wrong"})
	if code != CLIFailed || !strings.Contains(errOut, "give --admin-token") || strings.Contains(errOut, "wrong") {
		t.Errorf("wrong token: exit %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, CLIOptions{Limit: 1000, Session: "12x"})
	if code != CLIUsage || !strings.Contains(errOut, "invalid session id") {
		t.Errorf("bad id: exit %d %q", code, errOut)
	}
	srv.Close()
	code, _, errOut = runCLI(t, CLIOptions{Limit: 1000, Session: "1", AdminURL: srv.URL})
	if code != CLIFailed || !strings.Contains(errOut, "cannot reach replaylink's admin listener at "+srv.URL) || !strings.Contains(errOut, "--es-url") {
		t.Errorf("no replaylink: exit %d %q", code, errOut)
	}
}

func TestTerminalSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a\tb":             "a b",
		"\x1b[31mred":      "?[31mred",
		"bell\x07\u009b1m": "bell??1m",
		"ünïcode ✓":        "ünïcode ✓",
		"abcdef":           "abcdef",
	} {
		if got := terminalSafe(in, 10); got != want {
			t.Errorf("terminalSafe(%q) = %q, want %q", in, got, want)
		}
	}
	if got := terminalSafe("abcdefghijkl", 10); got != "abcdefghij…" {
		t.Errorf("cut: %q", got)
	}
}

func TestAdminBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090",
		":9090":          "http://127.0.0.1:9090",
		"0.0.0.0:9191":   "http://127.0.0.1:9191",
		"[::]:9090":      "http://127.0.0.1:9090",
		"[::1]:9090":     "http://[::1]:9090",
		"admin.svc:80":   "http://admin.svc:80",
	} {
		if got := AdminBaseURL(listen); got != want {
			t.Errorf("AdminBaseURL(%q) = %q, want %q", listen, got, want)
		}
	}
}

// A web page of another origin cannot change state on the admin listener:
// what a browser sends with fetch(..., {method: "POST", mode: "no-cors"})
// is refused, programs (no Origin, no Sec-Fetch-Site) and the listener's
// own pages pass, and reads are not concerned.
