package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestFlaskWalkthrough follows examples/flask/README.md as written, against
// the test search node: setup, replaylink run in front of the dev server,
// the failing call, OpenReplay's query and lookup. Only addresses change
// (the node's URL, free ports) and the session id (unique per run); the
// commands are read from the README, so the walkthrough cannot drift.
func TestFlaskWalkthrough(t *testing.T) {
	needPython(t, "flask")
	for _, tool := range []string{"curl", "sh"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool)
	}
	esURL := estest.URL(t)
	bin := buildReplaylink(t)
	root := repoRoot(t)
	readme := filepath.Join(root, "examples", "flask", "README.md")

	// Run where the README runs, a copy of the example's directory, so its
	// spool (./replaylink-spool) stays out of the repository.
	dir := t.TempDir()
	app, err := os.ReadFile(filepath.Join(root, "examples", "flask", "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), app, 0o644); err != nil {
		t.Fatal(err)
	}
	listen, upstream, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, port, _ := strings.Cut(upstream, ":")
	session := strconv.FormatUint(uint64(time.Now().UnixNano())%9e18+1e18, 10)
	t.Cleanup(func() { deleteSession(t, esURL, session) })
	subst := strings.NewReplacer("../../bin/replaylink", bin, "http://127.0.0.1:9250", esURL,
		"127.0.0.1:8080", listen, "127.0.0.1:5000", upstream, "127.0.0.1:9090", admin, "7204916803563247", session)
	env := append(os.Environ(), "PORT="+port, "REPLAYLINK_ADMIN="+admin, "PYTHONUNBUFFERED=1")
	sh := func(cmd string) (string, error) {
		c := exec.Command("sh", "-c", cmd)
		c.Dir, c.Env = dir, env
		out, err := c.CombinedOutput()
		return string(out), err
	}

	var setup, run, call, search, lookup string
	for _, block := range codeBlocks(t, readme) {
		for _, line := range block {
			c := normCommand(line)
			switch {
			case strings.HasPrefix(c, "../../bin/replaylink setup "):
				setup = c
			case strings.HasPrefix(c, "../../bin/replaylink run ") && strings.HasSuffix(c, "-- python3 app.py"):
				run = c
			case strings.HasPrefix(c, "curl -i ") && strings.Contains(c, "/api/cart"):
				call = c
			case strings.HasPrefix(c, "curl -s ") && strings.Contains(c, "/logs/_search"):
				search = strings.Join(block[slices.Index(block, line):], "\n") // its JSON spans lines
			}
		}
	}
	raw, _ := os.ReadFile(readme)
	if i := strings.Index(string(raw), "../../bin/replaylink lookup "); i >= 0 {
		lookup = strings.TrimSuffix(strings.SplitN(string(raw[i:]), "`", 2)[0], "`")
	}
	for name, c := range map[string]string{"setup": setup, "run": run, "the failing call": call, "OpenReplay's query": search, "lookup": lookup} {
		if c == "" {
			t.Fatalf("examples/flask/README.md shows no %s command", name)
		}
	}

	if out, err := sh(subst.Replace(setup)); err != nil {
		t.Fatalf("%s: %v\n%s", setup, err, out)
	}

	cmd := exec.Command("sh", "-c", "exec "+subst.Replace(run))
	cmd.Dir, cmd.Env = dir, env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	exited := startGroup(t, cmd, syscall.SIGTERM, "replaylink run", out)
	waitReady(t, "http://"+admin, exited, out, 30*time.Second)

	if got, err := sh(subst.Replace(call)); err != nil || !strings.Contains(got, " 500 ") {
		t.Fatalf("%s: %v, want a 500:\n%s", call, err, got)
	}
	// "Within a few seconds OpenReplay's own query finds the error, one
	// document with Flask's traceback."
	var errs []map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		got, err := sh(subst.Replace(search))
		if err != nil {
			t.Fatalf("OpenReplay's query: %v\n%s", err, got)
		}
		var r struct {
			Hits struct {
				Hits []searchHit `json:"hits"`
			} `json:"hits"`
		}
		_ = json.Unmarshal([]byte(got), &r)
		errs = errs[:0]
		for _, h := range r.Hits.Hits {
			if field(h.Source, "level") == "error" {
				errs = append(errs, h.Source)
			}
		}
		if len(errs) == 1 && strings.Contains(field(errs[0], "error.stack_trace"), "Traceback (most recent call last)") || time.Now().After(deadline) {
			break
		}
	}
	if len(errs) != 1 || field(errs[0], "url.path") != "/api/cart" || field(errs[0], "error.type") != "KeyError" {
		t.Fatalf("OpenReplay's query found %d error documents, want the one of GET /api/cart with Flask's traceback: %v", len(errs), errs)
	}

	table, err := sh(subst.Replace(lookup))
	if err != nil || !strings.Contains(table, "GET /api/cart -> 500") || !strings.Contains(table, "KeyError") {
		t.Errorf("%s: %v\n%s", lookup, err, table)
	}
}
