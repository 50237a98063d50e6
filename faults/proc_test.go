package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// instance is one replaylink process. Its stdout and stderr are kept in
// memory (secrets tests grep them) and copied to files in the test's temp
// directory (shown on failure).
type instance struct {
	t       testing.TB
	cmd     *exec.Cmd
	stdout  *syncBuffer
	stderr  *syncBuffer
	Listen  string // proxy address
	Admin   string // admin listener address
	done    chan struct{}
	exitErr error
}

// procOptions describe a replaylink process.
type procOptions struct {
	command string   // serve or run
	args    []string // flags
	env     []string // extra KEY=VALUE; REPLAYLINK_* from the test's own environment are never passed
	child   []string // with run: the backend command
	dir     string   // working directory (the backend's too); "": the test's
	// noWait returns as soon as the process runs, without waiting for the
	// "replaylink started" line (for commands that exit or fail to start).
	noWait bool
}

// startReplaylink starts the binary with --listen and --admin on 127.0.0.1:0
// (unless given), JSON logs, and waits for "replaylink started" to learn
// the addresses. The process and its children are killed when the test ends.
func startReplaylink(t testing.TB, o procOptions) *instance {
	t.Helper()
	args := []string{o.command}
	if o.command == "serve" || o.command == "run" {
		if !hasFlag(o.args, "listen") {
			args = append(args, "--listen", "127.0.0.1:0")
		}
		if !hasFlag(o.args, "admin") {
			args = append(args, "--admin", "127.0.0.1:0")
		}
		if !hasFlag(o.args, "log-format") {
			args = append(args, "--log-format", "json")
		}
	}
	args = append(args, o.args...)
	if len(o.child) > 0 {
		args = append(append(args, "--"), o.child...)
	}
	in := &instance{t: t, stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan struct{})}
	dir := t.TempDir()
	in.stdout.file = mustCreate(t, filepath.Join(dir, "stdout"))
	in.stderr.file = mustCreate(t, filepath.Join(dir, "stderr"))
	cmd := exec.Command(replaylinkBin, args...)
	cmd.Env = cleanEnv(o.env)
	cmd.Dir = o.dir
	cmd.Stdout, cmd.Stderr = in.stdout, in.stderr
	// Own process group: a SIGKILLed `replaylink run` leaves its backend
	// behind, and the cleanup kills the whole group by its id.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start replaylink: %v", err)
	}
	in.cmd = cmd
	go func() {
		in.exitErr = cmd.Wait()
		close(in.done)
	}()
	t.Cleanup(func() {
		in.kill()
		if t.Failed() {
			t.Logf("replaylink %s stderr (last 3 KiB):\n%s", o.command, tail(in.stderr.String(), 3<<10))
		}
	})
	if o.noWait {
		return in
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l, ok := in.startedLine(); ok {
			in.Listen, in.Admin = l.Listen, l.Admin
			return in
		}
		select {
		case <-in.done:
			t.Fatalf("replaylink exited before it started (%v); stderr:\n%s", in.exitErr, tail(in.stderr.String(), 4<<10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("replaylink did not start within 30 s; stderr:\n%s", tail(in.stderr.String(), 4<<10))
		}
	}
}

type startedLine struct {
	Message string `json:"message"`
	Listen  string `json:"listen"`
	Admin   string `json:"admin"`
}

func (in *instance) startedLine() (startedLine, bool) {
	for _, line := range strings.Split(in.stderr.String(), "\n") {
		var l startedLine
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "replaylink started" {
			return l, true
		}
	}
	return startedLine{}, false
}

// signal sends sig to the replaylink process (not its group).
func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		in.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill SIGKILLs replaylink and the backends it started (replaylink run puts
// each in a process group of its own, which a SIGKILLed replaylink cannot
// stop), and waits for replaylink.
func (in *instance) kill() {
	pid := in.cmd.Process.Pid
	kids := childPIDs(pid)
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, k := range kids {
		syscall.Kill(-k, syscall.SIGKILL)
		syscall.Kill(k, syscall.SIGKILL)
	}
	<-in.done
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		k, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		if f := strings.Fields(rest); len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, k)
		}
	}
	return kids
}

// wait waits up to d for the process to exit and returns its exit code.
func (in *instance) wait(d time.Duration) int {
	in.t.Helper()
	select {
	case <-in.done:
	case <-time.After(d):
		in.t.Fatalf("replaylink still running %v after it was asked to stop; stderr:\n%s", d, tail(in.stderr.String(), 3<<10))
	}
	var ee *exec.ExitError
	if errors.As(in.exitErr, &ee) {
		return ee.ExitCode()
	}
	if in.exitErr != nil {
		in.t.Fatalf("replaylink: %v", in.exitErr)
	}
	return 0
}

// exited reports whether the process is gone.
func (in *instance) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// metrics scrapes /metrics: series (name with labels) -> value.
func (in *instance) metrics() map[string]float64 {
	in.t.Helper()
	body, err := httpGet("http://" + in.Admin + "/metrics")
	if err != nil {
		in.t.Fatalf("GET /metrics: %v", err)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// peakRSS is the process's resident set high-water mark, in bytes.
func (in *instance) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// maxRSS bounds a replaylink process's memory in every test: generous, it
// catches unbounded growth (a leak, a queue without a cap), not slowness.
const maxRSS = 512 << 20

func (in *instance) checkMemory(r *report) {
	in.t.Helper()
	rss := in.peakRSS()
	r.add("peak_rss_mib", rss>>20)
	if rss > maxRSS {
		in.t.Errorf("replaylink's peak RSS is %d MiB, over the %d MiB bound", rss>>20, maxRSS>>20)
	}
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || a == "-"+name || strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			return true
		}
	}
	return false
}

// cleanEnv is the test's environment without REPLAYLINK_* settings, plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLAYLINK_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer collects a process's output, and copies it to a file.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != nil {
		b.file.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func mustCreate(t testing.TB, path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var plainClient = &http.Client{Timeout: 10 * time.Second}

func httpGet(url string) (string, error) {
	resp, err := plainClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// waitFor polls cond every 50ms until it holds or d passes, and returns
// how long it took and whether it held.
func waitFor(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > d {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyz reports the admin listener's readiness answer.
func readyz(in *instance) int {
	resp, err := plainClient.Get(fmt.Sprintf("http://%s/readyz", in.Admin))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
