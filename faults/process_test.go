package faults

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestSIGKILLUnderLoadAndRestart: replaylink is SIGKILLed under steady load,
// several times, and each time started again on the same spool. Every
// request whose response reached the client must be indexed exactly once:
// what was spooled and not acknowledged is replayed (its resends meet their
// earlier copies as 409s), and nothing is doubled.
func TestSIGKILLUnderLoadAndRestart(t *testing.T) {
	t.Parallel()
	sigkillScenario(t, 0)
}

// TestSIGKILLKeepsAnsweredErrorDocuments is the same with every 10th request
// failing in the backend (500): the client got the 500, so its error
// document, the one a replay most needs, must survive the kill too.
func TestSIGKILLKeepsAnsweredErrorDocuments(t *testing.T) {
	t.Parallel()
	sigkillScenario(t, 10)
}

func sigkillScenario(t *testing.T, failEvery int) {
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	spool := t.TempDir()
	args := serveArgs(b, esURL, x, spool)
	rl := startReplaylink(t, procOptions{command: "serve", args: args})
	l := newLoad(t, "r", rl.Listen)
	if failEvery > 0 {
		l.decorate = func(i int, req *http.Request) {
			if i%failEvery == 0 {
				req.URL.Path = "/fail"
			}
		}
	}

	kills := sizeInt("KILLS", 2, 10)
	every := 3 * time.Second
	done := make(chan struct{})
	go func() { l.run(context.Background(), rate, time.Duration(kills+1)*every); close(done) }()
	for range kills {
		time.Sleep(every)
		rl.kill()
		rl = startReplaylink(t, procOptions{command: "serve", args: args})
		l.setTarget(rl.Listen)
	}
	<-done
	r.add("kills", kills)
	l.requireAnsweredClean(r, false)
	checkConservation(t, x, l, r, sizeDuration("CATCHUP", 30*time.Second, 5*time.Minute))
	r.add("duplicates_409_last_run", rl.metrics()["replaylink_ship_documents_duplicate_total"])
	rl.checkMemory(r)
}

// TestSIGTERMKeepsTheBacklogInTheSpool: Elasticsearch refuses every bulk
// request (503) while load runs, so the spool fills; then SIGTERM, with
// requests still arriving. replaylink must drain in-flight requests, exit
// within its grace period with code 0, keep the unshipped documents in the
// spool, and the next start (Elasticsearch healthy) must ship every one of
// them exactly once.
func TestSIGTERMKeepsTheBacklogInTheSpool(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	fp := newFaultProxy(t, esURL)
	fp.set(fault{status: http.StatusServiceUnavailable})
	spool := t.TempDir()
	const grace = 2 * time.Second
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, fp.URL, x, spool, "--grace-period", grace.String())})
	l := newLoad(t, "r", rl.Listen)

	loadTime := sizeDuration("DURATION", 6*time.Second, 60*time.Second)
	done := make(chan struct{})
	go func() { l.run(context.Background(), rate, loadTime+time.Second); close(done) }()
	time.Sleep(loadTime)
	queued := rl.metrics()["replaylink_ship_documents_queued_total"]
	r.add("queued_at_sigterm", queued)
	stopAt := time.Now()
	rl.signal(syscall.SIGTERM)
	code := rl.wait(grace + 10*time.Second)
	r.add("exit_s", seconds(time.Since(stopAt)))
	<-done
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if d := time.Since(stopAt); d > grace+5*time.Second {
		t.Errorf("replaylink took %v to stop, grace period %v", d, grace)
	}
	if !strings.Contains(rl.stderr.String(), "stays in the spool") {
		t.Errorf("replaylink did not say that the rest stays in the spool; stderr:\n%s", tail(rl.stderr.String(), 2<<10))
	}
	if n := x.count(); n > 0 {
		t.Errorf("%d documents indexed while every bulk request was refused", n)
	}
	segs, _ := filepath.Glob(filepath.Join(spool, "*.seg"))
	r.add("segments_left", len(segs))
	if len(segs) == 0 {
		t.Errorf("no spool segment left after a shutdown with nothing shipped")
	}

	// The next start ships the backlog.
	rl = startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, spool)})
	l.setTarget(rl.Listen)
	l.requireAnsweredClean(r, false)
	checkConservation(t, x, l, r, catchUp)
	rl.checkMemory(r)
}

// TestSIGTERMFlushesWithinTheGracePeriod: with a slow but working
// Elasticsearch, SIGTERM ships everything queued before the process exits,
// with no restart needed.
func TestSIGTERMFlushesWithinTheGracePeriod(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	fp := newFaultProxy(t, esURL)
	fp.set(fault{delay: 500 * time.Millisecond})
	spool := t.TempDir()
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, fp.URL, x, spool, "--grace-period", "20s")})
	l := newLoad(t, "r", rl.Listen)
	l.run(context.Background(), rate, sizeDuration("DURATION", 4*time.Second, 30*time.Second))
	l.requireAllServed(r)
	stopAt := time.Now()
	rl.signal(syscall.SIGTERM)
	if code := rl.wait(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	r.add("exit_s", seconds(time.Since(stopAt)))
	if strings.Contains(rl.stderr.String(), "stays in the spool") {
		t.Errorf("replaylink left documents in the spool although the grace period was long enough")
	}
	// No restart: everything must be in already.
	answered := l.answeredIDs()
	docs := x.docs()
	checkExactlyOnce(t, docs, l, answered, l.sentIDs(), r)
	segs, _ := filepath.Glob(filepath.Join(spool, "*.seg"))
	var left int64
	for _, s := range segs {
		if fi, err := os.Stat(s); err == nil {
			left += fi.Size()
		}
	}
	r.add("spool_bytes_left", left)
}
