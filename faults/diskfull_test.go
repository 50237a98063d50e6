package faults

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestSpoolDiskFull: the spool directory is a 2 MiB tmpfs and Elasticsearch
// refuses everything (503), so the disk fills. The proxy must keep serving;
// what could not be kept is counted in replaylink_dropped_total; once
// Elasticsearch is back, what was kept is indexed exactly once, and fresh
// requests are indexed again (the spool recovers its space).
func TestSpoolDiskFull(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	spool := filepath.Join(t.TempDir(), "spool")
	mountTmpfs(t, spool, "2m")
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	fp := newFaultProxy(t, esURL)
	fp.set(fault{status: http.StatusServiceUnavailable})
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, fp.URL, x, spool)})
	l := newLoad(t, "r", rl.Listen)

	// About 700 bytes a record: 2 MiB hold some 3000 documents.
	n := sizeInt("DISKFULL_REQUESTS", 5000, 50000)
	l.run(context.Background(), max(rate, 500), time.Duration(n/max(rate, 500))*time.Second)
	st := l.requireAllServed(r)

	m := rl.metrics()
	// Documents lost before the spool took them (disk full, queues), and
	// those the spool dropped at its cap after taking them.
	var refused float64
	for k, v := range m {
		if strings.HasPrefix(k, "replaylink_dropped_total{") && k != `replaylink_dropped_total{reason="spool_full"}` {
			refused += v
		}
	}
	capDropped := m[`replaylink_dropped_total{reason="spool_full"}`]
	queued := m["replaylink_ship_documents_queued_total"]
	r.add("queued", queued)
	r.add("dropped_disk_full", m[`replaylink_dropped_total{reason="spool_write_error"}`])
	r.add("dropped_cap", capDropped)
	if refused+capDropped == 0 {
		t.Fatalf("the spool's disk should be full, yet nothing was counted as dropped (queued %v of %d)", queued, st.sent)
	}
	if int(queued+refused) != st.sent {
		t.Errorf("queued %v + dropped %v != %d requests: a document was lost without being counted", queued, refused, st.sent)
	}
	kept := int(queued - capDropped)

	// Elasticsearch is back: what was kept gets in, exactly once.
	fp.set(fault{})
	took, ok := x.waitCount(kept, catchUp)
	r.add("catch_up_s", seconds(took))
	if !ok {
		t.Errorf("%d documents indexed after %v, want the %d kept", x.count(), took, kept)
	}
	time.Sleep(1500 * time.Millisecond)
	docs := x.docs()
	perID := map[string]int{}
	for _, d := range docs {
		perID[d.Doc.HTTP.Request.ID]++
	}
	for id, c := range perID {
		if c > 1 {
			t.Errorf("request %s indexed %d times", id, c)
		}
	}
	r.add("indexed", len(docs))
	if len(docs) != kept {
		t.Errorf("%d documents indexed, %d were kept", len(docs), kept)
	}

	// Liveness: the spool has room again, fresh requests get through.
	fresh := l.send(20)
	took, ok = x.waitCount(len(docs)+len(fresh), livenessBound+5*time.Second)
	r.add("liveness_s", seconds(took))
	if !ok || took > livenessBound {
		m := rl.metrics()
		t.Errorf("after the disk-full episode, %d fresh requests were not indexed within %v (count %d, want %d; dropped now %v)",
			len(fresh), livenessBound, x.count(), len(docs)+len(fresh), m[`replaylink_dropped_total{reason="spool_write_error"}`])
	}
	rl.checkMemory(r)

	// A restart on a disk that is (still) full must not keep the proxy
	// from starting: requests matter more than their logs.
	fill := filepath.Join(spool, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=64k", "count=64").Run() // fills what is left; ENOSPC expected
	rl.kill()
	rl = startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, fp.URL, x, spool), noWait: true})
	if _, ok := waitFor(20*time.Second, func() bool { _, ok := rl.startedLine(); return ok || rl.exited() }); !ok || rl.exited() {
		t.Errorf("replaylink did not start on a full spool disk (exited: %v); stderr:\n%s", rl.exited(), tail(rl.stderr.String(), 2<<10))
		return
	}
	l2 := newLoad(t, "after-restart", "")
	started, _ := rl.startedLine()
	l2.setTarget(started.Listen)
	l2.send(10)
	if s := l2.stats(); s.backendOK != 10 {
		t.Errorf("after a restart on a full spool disk, %d of 10 requests were served: %v", s.backendOK, s.firstErrors)
	}
}

// mountTmpfs mounts a tmpfs of size at dir for the test, or skips it when
// this machine does not allow mounting (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mkdir", "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("mkdir %s: %v %s", dir, err, out)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill the spool's disk (needs root or CAP_SYS_ADMIN): %v %s", size, err, out)
	}
	// Registered before replaylink starts, so it runs after replaylink is gone.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}
