package faults

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestBackendCrashUnderRun: `replaylink run --restart on-failure` supervises
// the backend; a request makes it crash under steady load. Requests meanwhile
// get the proxy's clean 502 (never a dropped connection), the backend is
// started again, requests succeed again, and every answered request, 502s
// included, has its access document.
func TestBackendCrashUnderRun(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	x := newIndex(t, esURL)
	addr := estest.FreeAddr(t)
	rl := startReplaylink(t, procOptions{
		command: "run",
		args: []string{"--upstream", "http://" + addr, "--restart", "on-failure", "--es-url", esURL, "--index", x.Name,
			"--spool-dir", t.TempDir(), "--flush-interval", "200ms"},
		child: backendCommand(addr),
	})
	if _, ok := waitFor(15*time.Second, func() bool { return readyz(rl) == http.StatusOK }); !ok {
		t.Fatalf("/readyz never answered 200 with the backend up")
	}
	l := newLoad(t, "r", rl.Listen)
	crashes := sizeInt("CRASHES", 1, 5)
	every := 3 * time.Second
	done := make(chan struct{})
	go func() { l.run(context.Background(), rate, time.Duration(crashes+1)*every); close(done) }()
	for c := range crashes {
		time.Sleep(every)
		req, _ := http.NewRequest(http.MethodGet, "http://"+rl.Listen+"/crash", nil)
		req.Header.Set("X-Request-ID", "crash-"+string(rune('a'+c)))
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatalf("the crashing request got no answer from the proxy: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("the request that crashed the backend got %d, want the proxy's 502", resp.StatusCode)
		}
	}
	<-done
	st := l.requireAnsweredClean(r, true)
	if st.noResponse > 0 {
		t.Errorf("%d requests got no answer at all: the proxy must answer while the backend is down", st.noResponse)
	}
	// After the last restart (1 s delay), requests are served again.
	// The last request was sent a few seconds after the last crash.
	if last := l.result(l.next - 1); !last.backend {
		t.Errorf("the last request of the run was not served by the restarted backend: %s", last.err)
	}
	m := rl.metrics()
	r.add("restarts", m["replaylink_capture_child_restarts_total"])
	if int(m["replaylink_capture_child_restarts_total"]) != crashes {
		t.Errorf("replaylink_capture_child_restarts_total = %v, want %d", m["replaylink_capture_child_restarts_total"], crashes)
	}
	checkConservation(t, x, l, r, catchUp)
	// The output of every run of the backend was captured.
	started := 0
	for _, d := range x.docs() {
		if strings.Contains(d.Doc.Message, "backend started pid=") {
			started++
		}
	}
	if started != crashes+1 {
		t.Errorf("%d 'backend started' documents, want %d (one per run of the backend)", started, crashes+1)
	}
	rl.checkMemory(r)
}

// TestBackendNotListeningYet: replaylink starts before its backend listens.
// /readyz says not ready, requests get the proxy's clean 502; once the
// backend listens, requests succeed and /readyz turns ready.
func TestBackendNotListeningYet(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	x := newIndex(t, esURL)
	const delay = 4 * time.Second
	b := startBackend(t, delay)
	startedAt := time.Now()
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, t.TempDir())})
	if st := readyz(rl); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d before the backend listens, want 503", st)
	}
	l := newLoad(t, "r", rl.Listen)
	done := make(chan struct{})
	go func() { l.run(context.Background(), rate, delay+3*time.Second); close(done) }()
	_, ok := waitFor(30*time.Second, func() bool { return readyz(rl) == http.StatusOK })
	// The backend listens delay after it was started.
	r.add("ready_after_backend_s", seconds(time.Since(startedAt.Add(delay))))
	<-done
	if !ok {
		t.Errorf("/readyz did not turn ready within 30 s of the backend listening")
	}
	st := l.requireAnsweredClean(r, true)
	if st.upstreamErrors == 0 {
		t.Errorf("no request got the proxy's 502 while the backend was not listening")
	}
	if st.noResponse > 0 {
		t.Errorf("%d requests got no answer at all", st.noResponse)
	}
	// Requests sent after the backend listened (plus a second) succeed.
	l.mu.Lock()
	var lateFailures int
	for i := l.next - rate; i < l.next; i++ { // the last second of load
		if res, ok := l.results[i]; ok && !res.backend {
			lateFailures++
		}
	}
	l.mu.Unlock()
	if lateFailures > 0 {
		t.Errorf("%d requests of the last second failed although the backend listened for 2 s", lateFailures)
	}
	checkConservation(t, x, l, r, catchUp)
	rl.checkMemory(r)
}

// TestRunSIGKILLTakesTheBackendAlong: when `replaylink run` is SIGKILLed
// (an OOM kill), its backend must not live on outside it: an orphan keeps
// the port, so the backend of the next start cannot listen, and its output
// is no longer captured by anyone.
func TestRunSIGKILLTakesTheBackendAlong(t *testing.T) {
	t.Parallel()
	newReport(t)
	dir := t.TempDir()
	addr := estest.FreeAddr(t)
	in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
		"--upstream", "http://" + addr, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
	}})
	if _, ok := waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK }); !ok {
		t.Fatalf("the backend never became ready")
	}
	kids := childPIDs(in.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("replaylink run has %d children, want its backend", len(kids))
	}
	t.Cleanup(func() { syscall.Kill(-kids[0], syscall.SIGKILL); syscall.Kill(kids[0], syscall.SIGKILL) })
	in.signal(syscall.SIGKILL) // replaylink alone, as the OOM killer does
	if _, ok := waitFor(3*time.Second, func() bool { return syscall.Kill(kids[0], 0) != nil || isZombie(kids[0]) }); !ok {
		t.Errorf("the backend (pid %d) still runs 3 s after replaylink run was SIGKILLed; it still holds %s", kids[0], addr)
	}
}

// isZombie reports a process that exited and waits to be reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] == "Z"
}
