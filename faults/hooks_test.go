package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// The real servers the runtime hooks are tested with, under replaylink run
// (testenv/hooks-deps.sh installs them; capture/hooks/testdata has the
// apps, which share their endpoints: /work?tag=T&ms=N logs and prints
// around a wait, /fail?tag=T raises, so the server prints its traceback).
type hookedServer struct {
	name string
	dir  string   // the app's directory, under capture/hooks/testdata
	cmd  []string // "{port}" is replaced by the port
	post bool     // the app takes POST /work with a JSON body
}

var hookedServers = []hookedServer{
	{name: "werkzeug threaded", dir: "python", cmd: []string{"python3", "flask_app.py", "{port}"}},
	{name: "gunicorn sync", dir: "python", cmd: []string{"gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "--access-logfile", "-", "flask_app:app"}},
	{name: "gunicorn gthread", dir: "python", cmd: []string{"gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:{port}", "--access-logfile", "-", "flask_app:app"}},
	{name: "uvicorn", dir: "python", cmd: []string{"uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", "{port}"}},
	{name: "uvicorn workers", dir: "python", cmd: []string{"uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2"}},
	{name: "django runserver", dir: "python", cmd: []string{"python3", "django_app.py", "{port}"}},
	{name: "http.server", dir: "python", cmd: []string{"python3", "plain_app.py", "{port}"}},
	{name: "express", dir: "node", cmd: []string{"node", "express-app.js", "{port}"}, post: true},
	{name: "fastify", dir: "node", cmd: []string{"node", "fastify-app.js", "{port}"}, post: true},
	{name: "node http", dir: "node", cmd: []string{"node", "http-app.js", "{port}"}, post: true},
	{name: "node http esm", dir: "node", cmd: []string{"node", "http-app.mjs", "{port}"}, post: true},
	{name: "node cluster", dir: "node", cmd: []string{"node", "cluster-app.js", "{port}"}},
}

// hookSessions is how many sessions send requests at once.
const hookSessions = 64

// TestHooksMakeEveryLineExact: under replaylink run with its defaults,
// 64 sessions at once, each request logging, printing and logging again
// around a 20-80 ms wait, one in eight failing: every backend line printed
// inside a request (logging, print/console, the framework's traceback and
// access line) reaches its request's session, 100% with none wrong. With
// --hooks off the same lines keep today's precision: none wrong.
func TestHooksMakeEveryLineExact(t *testing.T) {
	t.Parallel()
	needHookServers(t)
	r := newReport(t)
	for _, srv := range hookedServers {
		for _, hooks := range []string{"auto", "off"} {
			t.Run(srv.name+"/hooks="+hooks, func(t *testing.T) {
				res := runHookedServer(t, srv, hooks)
				r.add(strings.ReplaceAll(srv.name, " ", "_")+"_hooks_"+hooks,
					fmt.Sprintf("%d/%d right, %d wrong", res.right, res.lines, res.wrong))
				if res.wrong > 0 {
					t.Errorf("%d of %d tagged lines in a wrong session:\n%s", res.wrong, res.lines, strings.Join(res.examples, "\n"))
				}
				if hooks == "off" {
					return
				}
				if res.right != res.lines {
					t.Errorf("%d of %d tagged lines reached their session:\n%s", res.right, res.lines, strings.Join(res.examples, "\n"))
				}
				for tag, n := range res.perTag {
					if n < 2 {
						t.Errorf("tag %s: %d documents in its session, want the request's lines", tag, n)
					}
				}
				if len(res.perTag) != hookSessions {
					t.Errorf("%d of %d requests have documents in their session", len(res.perTag), hookSessions)
				}
			})
		}
	}
}

type hookResult struct {
	lines, right, wrong int
	perTag              map[string]int // documents in the tag's own session
	examples            []string
}

var tagPattern = regexp.MustCompile(`tq[0-9]{3}z`)

func hookTag(i int) string { return fmt.Sprintf("tq%03dz", i) }

func hookSession(i int) string { return fmt.Sprint(7700000 + i) }

func runHookedServer(t *testing.T, srv hookedServer, hooks string) hookResult {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "docs.ndjson")
	port := estest.FreeAddr(t)
	_, p, _ := strings.Cut(port, ":")
	cmd := slices.Clone(srv.cmd)
	for i := range cmd {
		cmd[i] = strings.ReplaceAll(cmd[i], "{port}", p)
	}
	appDir, _ := filepath.Abs(filepath.Join("..", "capture", "hooks", "testdata", srv.dir))
	in := startReplaylink(t, procOptions{command: "run", dir: appDir, child: cmd, args: []string{
		"--upstream", "http://" + port, "--spool-dir", filepath.Join(dir, "spool"), "--output", out,
		"--flush-interval", "100ms", "--hooks", hooks,
	}})
	if _, ok := waitFor(30*time.Second, func() bool { return readyz(in) == http.StatusOK }); !ok {
		t.Fatalf("%s did not become ready", srv.name)
	}
	return collectHooked(t, in, srv.post, out)
}

// collectHooked sends hookSessions sessions' requests at once through in,
// then reads the documents in out once it stops growing and scores every
// backend document that names one request's tag.
func collectHooked(t *testing.T, in *instance, post bool, out string) hookResult {
	t.Helper()
	var wg sync.WaitGroup
	for i := range hookSessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := hookTag(i)
			method, target, body := http.MethodGet, fmt.Sprintf("/work?tag=%s&ms=%d", tag, 20+(i*7)%61), ""
			switch {
			case i%8 == 3:
				target = "/fail?tag=" + tag
			case post && i%8 == 5:
				method, body = http.MethodPost, `{"n":1}`
			}
			req, _ := http.NewRequest(method, "http://"+in.Listen+target, strings.NewReader(body))
			req.Header["openReplaySession.id"] = []string{hookSession(i)}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := plainClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", target, err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	// Until the output stops growing: the last lines, groups and rounds.
	var docs []json.RawMessage
	last, stable := -1, 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && stable < 4; {
		time.Sleep(250 * time.Millisecond)
		docs = readLines(t, out)
		if len(docs) == last {
			stable++
		} else {
			last, stable = len(docs), 0
		}
	}
	res := hookResult{perTag: map[string]int{}}
	for _, raw := range docs {
		var d steeredDoc
		if json.Unmarshal(raw, &d) != nil || !slices.Contains(d.Tags, "backend") {
			continue
		}
		tags := tagPattern.FindAllString(d.Message+string(raw), -1)
		slices.Sort(tags)
		tags = slices.Compact(tags)
		if len(tags) != 1 {
			continue // untagged (start-up lines), or a record of two requests
		}
		var i int
		fmt.Sscanf(tags[0], "tq%03dz", &i)
		res.lines++
		switch d.Session.ID {
		case hookSession(i):
			res.right++
			res.perTag[tags[0]]++
		case "":
			if len(res.examples) < 5 {
				res.examples = append(res.examples, "none: "+tail(d.Message, 200))
			}
		default:
			res.wrong++
			if len(res.examples) < 5 {
				res.examples = append(res.examples, fmt.Sprintf("in %s, want %s: %s", d.Session.ID, hookSession(i), tail(d.Message, 200)))
			}
		}
	}
	if res.lines == 0 {
		t.Fatalf("no tagged backend document in %d documents", len(docs))
	}
	return res
}

// TestHooksInASidecar: the Kubernetes example's wiring for real. replaylink
// serve --hooks-dir installs the hooks in a directory it shares with the
// app, which it does not start: gunicorn (2 workers) with only
// PYTHONPATH, NODE_OPTIONS and REPLAYLINK_HOOK_NONCE_FILE set (what
// hooks install prints), writing everything, Flask's tracebacks included,
// to the --error-logfile replaylink tails. Every tagged line is exact.
func TestHooksInASidecar(t *testing.T) {
	t.Parallel()
	needHookServers(t)
	for _, logging := range []string{"basicConfig", "framework"} {
		t.Run("logging="+logging, func(t *testing.T) { runSidecar(t, logging) })
	}
}

// runSidecar runs one sidecar case: logging is the test app's
// TESTAPP_LOGGING (see capture/hooks/testdata/python).
func runSidecar(t *testing.T, logging string) {
	dir := t.TempDir()
	hooksDir, logFile, out := filepath.Join(dir, "hooks"), filepath.Join(dir, "app.log"), filepath.Join(dir, "docs.ndjson")
	port := estest.FreeAddr(t)
	_, p, _ := strings.Cut(port, ":")
	in := startReplaylink(t, procOptions{command: "serve", args: []string{
		"--upstream", "http://" + port, "--spool-dir", filepath.Join(dir, "spool"), "--output", out, "--flush-interval", "100ms",
		"--hooks-dir", hooksDir, "--tail", logFile, "--tail-from-beginning",
	}})
	install := exec.Command(replaylinkBin, "hooks", "install", hooksDir)
	envOut, err := install.Output()
	if err != nil {
		t.Fatalf("replaylink hooks install: %v", err)
	}
	app := exec.Command("gunicorn", "-w", "2", "-b", "127.0.0.1:"+p, "--error-logfile", logFile, "--capture-output", "flask_app:app")
	app.Dir, _ = filepath.Abs(filepath.Join("..", "capture", "hooks", "testdata", "python"))
	app.Env = append(cleanEnv(nil), "PYTHONUNBUFFERED=1", "TESTAPP_LOGGING="+logging)
	for _, line := range strings.Split(string(envOut), "\n") {
		if kv := strings.TrimSpace(line); strings.Contains(kv, "=") && !strings.Contains(kv, " ") {
			app.Env = append(app.Env, kv) // the variables hooks install prints
		}
	}
	app.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-app.Process.Pid, syscall.SIGKILL); app.Wait() })
	if _, ok := waitFor(30*time.Second, func() bool { return readyz(in) == http.StatusOK }); !ok {
		t.Fatal("the app did not come up behind replaylink")
	}
	res := collectHooked(t, in, false, out)
	newReport(t).add("sidecar_gunicorn_"+logging, fmt.Sprintf("%d/%d right, %d wrong", res.right, res.lines, res.wrong))
	if res.wrong > 0 || res.right != res.lines || len(res.perTag) != hookSessions || res.lines < hookSessions+hookSessions/8 {
		t.Errorf("%d of %d tagged lines in their session, %d wrong, %d of %d requests seen:\n%s",
			res.right, res.lines, res.wrong, len(res.perTag), hookSessions, strings.Join(res.examples, "\n"))
	}
	b, _ := os.ReadFile(logFile)
	if !bytes.Contains(b, []byte("\x1b_rl1;")) {
		t.Error("the app's log file has no marks: the hook did not load")
	}
}

// TestHooksPassOutputThroughUnchanged: what the backend prints reaches
// replaylink's stdout byte for byte whether or not the hook marked it:
// a line over 4 KiB, ANSI colours, a line written in two parts, and a last
// line without a newline at exit, all printed inside a request.
func TestHooksPassOutputThroughUnchanged(t *testing.T) {
	t.Parallel()
	needHookServers(t)
	dir := t.TempDir()
	py := filepath.Join(dir, "printer.py")
	os.WriteFile(py, []byte(`import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sys.stdout.write("x" * 5000 + " long\n")
        sys.stdout.write("\x1b[31mred\x1b[0m and plain\n")
        sys.stdout.write("written in ")
        sys.stdout.write("two parts\n")
        print("\x1b_rl1;0000000000000000;r0123456789abcdef\x1b\\ a mark with another nonce")
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        if self.path == "/exit":
            sys.stdout.write("the last line, without a newline")
            sys.stdout.flush()
            os._exit(0)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`), 0o644)
	js := filepath.Join(dir, "printer.js")
	os.WriteFile(js, []byte(`const http = require('http');
http.createServer((req, res) => {
  process.stdout.write('y'.repeat(5000) + ' long\n');
  console.log('\x1b[32mgreen\x1b[0m and plain');
  process.stdout.write(Buffer.from('written in '));
  process.stdout.write('two parts\n');
  console.log('\x1b_rl1;0000000000000000;r0123456789abcdef\x1b\\ a mark with another nonce');
  res.end('ok');
  if (req.url === '/exit') {
    process.stdout.write('the last line, without a newline', () => process.exit(0));
  }
}).listen(Number(process.argv[2]), '127.0.0.1');
`), 0o644)
	for _, prog := range [][]string{{"python3", py}, {"node", js}} {
		var outs [2]string
		for k, hooks := range []string{"off", "auto"} {
			port := estest.FreeAddr(t)
			_, p, _ := strings.Cut(port, ":")
			in := startReplaylink(t, procOptions{command: "run", child: append(slices.Clone(prog), p), args: []string{
				"--upstream", "http://" + port, "--spool-dir", t.TempDir(), "--output", filepath.Join(t.TempDir(), "docs"),
				"--hooks", hooks,
			}})
			waitFor(20*time.Second, func() bool { return readyz(in) == http.StatusOK })
			for _, path := range []string{"/a", "/exit"} {
				req, _ := http.NewRequest(http.MethodGet, "http://"+in.Listen+path, nil)
				req.Header["openReplaySession.id"] = []string{"7700999"}
				if resp, err := plainClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			in.wait(20 * time.Second)
			outs[k] = in.stdout.String()
		}
		if outs[0] != outs[1] || !strings.HasSuffix(outs[1], "the last line, without a newline") || strings.Count(outs[1], "\x1b_rl1;") != 2 {
			t.Errorf("%s: stdout with the hook differs from stdout without it:\nwithout: %q\nwith:    %q", prog[0], tail(outs[0], 400), tail(outs[1], 400))
		}
		if len(outs[1]) < 10000 {
			t.Errorf("%s: only %d bytes passed through", prog[0], len(outs[1]))
		}
	}
}

// needHookServers skips when the servers testenv/hooks-deps.sh installs
// are missing (go test by hand on a machine without them); make test
// always has them, and CI=true makes their absence a failure.
func needHookServers(t *testing.T) {
	t.Helper()
	var missing []string
	for _, c := range [][]string{{"python3", "-c", "import flask, gunicorn, uvicorn, django, starlette"}, {"node", "--version"}} {
		if err := exec.Command(c[0], c[1:]...).Run(); err != nil {
			missing = append(missing, strings.Join(c, " "))
		}
	}
	if _, err := os.Stat(filepath.Join("..", "capture", "hooks", "testdata", "node", "node_modules", "express")); err != nil {
		missing = append(missing, "capture/hooks/testdata/node/node_modules (npm ci)")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("the hooks' real servers are not installed (%s): run bash testenv/hooks-deps.sh", strings.Join(missing, "; "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
