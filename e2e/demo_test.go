package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRunDemo is a newcomer's first minutes: `make run`, then the
// commands it prints (and README shows) in another terminal. The demo's
// failing /api/cart logs a one-line error and then panics; the promise is
// one error document for the one failing request, holding the panic's
// stack, and a session page that says so ("1 error"). The page is
// screenshotted in a real browser.
func TestMakeRunDemo(t *testing.T) {
	needChromium(t)
	for _, tool := range []string{"make", "curl", "go"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool)
	}
	root := repoRoot(t)
	bin := t.TempDir()
	listen, admin, demo := freeAddr(t), freeAddr(t), freeAddr(t)
	_, demoPort, _ := strings.Cut(demo, ":")

	cmd := exec.Command("make", "--no-print-directory", "run", "BIN="+bin, "LISTEN="+listen, "ADMIN="+admin, "DEMO_PORT="+demoPort)
	cmd.Dir = root
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	exited := startGroup(t, cmd, syscall.SIGINT, "make run", out) // Ctrl-C, as the demo says
	waitReady(t, "http://"+admin, exited, out, 3*time.Minute)     // make builds first

	// The commands make run prints, run as printed.
	printed := printedCommands(t, out.String())
	if len(printed) != 4 {
		t.Fatalf("make run printed %d commands to try, want 4 (two curl, the page, lookup):\n%s", len(printed), out.String())
	}
	var pageURL, table string
	for _, c := range printed {
		switch {
		case strings.HasPrefix(c, "curl "):
			if b, err := exec.Command("sh", "-c", c+" -sS").CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c, err, b)
			}
		case strings.HasPrefix(c, "xdg-open "):
			pageURL = strings.TrimPrefix(c, "xdg-open ")
		case strings.Contains(c, "/replaylink lookup "):
			// The documents reach the page within a moment.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				b, err := exec.Command("sh", "-c", c).CombinedOutput()
				table = string(b)
				// all three: the backend's "said hello" line may come a moment after its request's document
				if err == nil && strings.Contains(table, "panic: cart_id missing") && strings.Contains(table, "3 documents for session") ||
					time.Now().After(deadline) {
					break
				}
			}
		default:
			t.Errorf("make run printed a command this test does not know: %q", c)
		}
	}

	// README's block shows the same commands, for the default addresses.
	readmeCmds := readmeBlock(t, filepath.Join(root, "README.md"), "sessions/7204916803563247")
	norm := strings.NewReplacer("127.0.0.1:8080", listen, "127.0.0.1:9090", admin, "bin/", bin+"/")
	for _, c := range readmeCmds {
		c = norm.Replace(c)
		found := false
		for _, p := range printed {
			found = found || strings.Replace(p, "lookup --admin "+admin+" ", "lookup ", 1) == c
		}
		if !found {
			t.Errorf("README shows %q, which make run does not print; it prints %q", c, printed)
		}
	}

	// lookup's table: one row for the failing request, the panic as its message.
	if n := strings.Count(table, "error "); n != 1 || !strings.Contains(table, "GET /api/cart -> 500") || !strings.Contains(table, "3 documents for session 7204916803563247") {
		t.Errorf("lookup shows %d error rows, want 1 (GET /api/cart with the panic) of 3 documents:\n%s", n, table)
	}

	// The JSON lines: one error document for the failing request, the last
	// version of its _id, with the panic's stack; the earlier versions are
	// marked as replaced.
	latest := map[string]map[string]any{}
	var order []string
	replaced := 0
	for _, line := range strings.Split(out.String(), "\n") {
		var d map[string]any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &d) != nil {
			continue
		}
		id, _ := d["_id"].(string)
		if id == "" {
			t.Fatalf("an --output line without its _id: %s", line)
		}
		if _, seen := latest[id]; seen {
			if d["_replaces"] != true {
				t.Errorf("a second line of _id %s without \"_replaces\":true", id)
			}
			replaced++
		} else {
			order = append(order, id)
		}
		latest[id] = d
	}
	var errs []map[string]any
	for _, id := range order {
		if field(latest[id], "level") == "error" {
			errs = append(errs, latest[id])
		}
	}
	if len(errs) != 1 {
		t.Fatalf("%d error documents after replacements, want 1:\n%v", len(errs), errs)
	}
	e := errs[0]
	for name, want := range map[string]string{"url.path": "/api/cart", "http.response.status_code": "500", "error.type": "panic", "openReplaySession.id": "7204916803563247"} {
		if got := field(e, name); got != want {
			t.Errorf("the error document's %s = %q, want %q", name, got, want)
		}
	}
	if st := field(e, "error.stack_trace"); !strings.Contains(st, "goroutine ") || !strings.Contains(st, "checkout failed") {
		t.Errorf("error.stack_trace lacks the panic's goroutine trace or the request's earlier error line:\n%s", st)
	}
	if replaced == 0 {
		t.Error("no line replaced an earlier one: the 500 was printed before its panic folded in, so one should")
	}

	// The session page, as a person sees it.
	if pageURL == "" {
		t.Fatal("make run printed no session page")
	}
	b := startBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := b.newPage(ctx, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.navigate(ctx, pageURL); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p.eval(ctx, "document.body.innerText", &text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 requests", "1 error", "GET", "/api/cart", "panic: cart_id missing", "goroutine ", "runtime/debug.Stack()"} {
		if !strings.Contains(text, want) {
			t.Errorf("the session page lacks %q; it shows:\n%s", want, text)
		}
	}
	png, err := p.screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir(t), "demo-session-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("session page screenshot: %s", shot)
}

// startGroup starts cmd in a process group of its own and, at the end of
// the test, sends the group stop (then SIGKILL after 15 s); the channel is
// closed when cmd has exited. what names it in the log of a failed test.
func startGroup(t *testing.T, cmd *exec.Cmd, stop syscall.Signal, what string, out *syncBuffer) <-chan struct{} {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, stop)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s:\n%s", what, out.String())
		}
	})
	return exited
}

// waitReady waits for the admin listener's /readyz.
func waitReady(t *testing.T, admin string, exited <-chan struct{}, out *syncBuffer, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("exited at start:\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer 200 within %s (last: %v)\n%s", within, err, out.String())
		}
	}
}

var trailingComment = regexp.MustCompile(`\s+#.*$`)

// printedCommands are the commands `make run` tells a user to try: the
// indented lines after "Try, in another terminal:", without comments.
func printedCommands(t *testing.T, out string) []string {
	t.Helper()
	var cmds []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Try, in another terminal:"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			cmds = append(cmds, normCommand(line))
		case in:
			return cmds
		}
	}
	return cmds
}

// normCommand drops a shell comment and runs of spaces.
func normCommand(line string) string {
	return strings.Join(strings.Fields(trailingComment.ReplaceAllString(line, "")), " ")
}

// readmeBlock returns the commands of the first fenced code block of path
// that contains marker, one per line, comments dropped.
func readmeBlock(t *testing.T, path, marker string) []string {
	t.Helper()
	for _, block := range codeBlocks(t, path) {
		if !strings.Contains(strings.Join(block, "\n"), marker) {
			continue
		}
		var cmds []string
		for _, l := range block {
			if c := normCommand(l); c != "" {
				cmds = append(cmds, c)
			}
		}
		return cmds
	}
	t.Fatalf("%s has no code block with %q", path, marker)
	return nil
}

// codeBlocks returns the fenced code blocks of a Markdown file, their
// continued lines ("\" at the end) joined.
func codeBlocks(t *testing.T, path string) [][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var cur []string
	in, cont := false, false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			if in {
				blocks = append(blocks, cur)
				cur = nil
			}
			in, cont = !in, false
		case in && cont:
			cur[len(cur)-1] += " " + strings.TrimSpace(strings.TrimSuffix(line, "\\"))
			cont = strings.HasSuffix(line, "\\")
		case in:
			cont = strings.HasSuffix(line, "\\")
			cur = append(cur, strings.TrimSuffix(line, "\\"))
		}
	}
	return blocks
}
