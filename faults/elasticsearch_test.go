package faults

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// serveArgs are the flags of a replaylink serve in front of b, shipping to
// esURL into x through the spool dir.
func serveArgs(b *backend, esURL string, x *esIndex, spool string, extra ...string) []string {
	return append([]string{
		"--upstream", b.URL, "--es-url", esURL, "--index", x.Name,
		"--spool-dir", spool, "--flush-interval", "200ms",
	}, extra...)
}

// faultScenario runs steady load through replaylink while Elasticsearch
// (behind a fault proxy) misbehaves as f says for faultTime, then checks
// that the proxy served everything and conservation and liveness hold.
func faultScenario(t *testing.T, f fault) (*instance, *faultProxy, *report) {
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	fp := newFaultProxy(t, esURL)
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, fp.URL, x, t.TempDir())})
	l := newLoad(t, "r", rl.Listen)

	const before, after = 2 * time.Second, 2 * time.Second
	done := make(chan struct{})
	go func() { l.run(context.Background(), rate, before+faultTime+after); close(done) }()
	time.Sleep(before)
	fp.set(f)
	time.Sleep(faultTime)
	fp.set(fault{})
	<-done

	l.requireAllServed(r)
	r.add("bulks", fp.bulks.Load())
	r.add("bulks_faulted", fp.injected.Load())
	if f != (fault{}) && fp.injected.Load() == 0 {
		t.Errorf("the fault never met a bulk request")
	}
	checkConservation(t, x, l, r, catchUp)
	rl.checkMemory(r)
	return rl, fp, r
}

// TestConservationHealthy: N requests through a healthy pipeline give
// exactly N documents, and fresh ones are searchable within seconds.
func TestConservationHealthy(t *testing.T) {
	t.Parallel()
	faultScenario(t, fault{})
}

// TestElasticsearchAnswers429: the cluster refuses whole bulk requests with
// 429 for a while; nothing is lost, nothing doubled, and retries happened.
func TestElasticsearchAnswers429(t *testing.T) {
	t.Parallel()
	rl, _, r := faultScenario(t, fault{status: http.StatusTooManyRequests})
	requireRetried(t, rl, r)
}

// TestElasticsearchAnswers503: the same with 503 (a node restarting, a
// proxy in front of the cluster without a healthy backend).
func TestElasticsearchAnswers503(t *testing.T) {
	t.Parallel()
	rl, _, r := faultScenario(t, fault{status: http.StatusServiceUnavailable})
	requireRetried(t, rl, r)
}

// TestElasticsearchItemLevel429: the request is answered 200 but every
// item is rejected with 429 (es_rejected_execution_exception, a full write
// queue): the usual push-back of a busy cluster.
func TestElasticsearchItemLevel429(t *testing.T) {
	t.Parallel()
	rl, _, r := faultScenario(t, fault{itemStatus: http.StatusTooManyRequests})
	requireRetried(t, rl, r)
}

// TestElasticsearchLostResponses: the node indexes each bulk request but
// the answer is lost (connection closed): the shipper resends, and the
// deterministic _id with the create action turns every resend into a 409,
// so there are no duplicates.
func TestElasticsearchLostResponses(t *testing.T) {
	t.Parallel()
	rl, _, r := faultScenario(t, fault{loseResponse: true})
	m := rl.metrics()
	dups := m["replaylink_ship_documents_duplicate_total"]
	r.add("duplicates_409", dups)
	if dups == 0 {
		t.Errorf("no 409 duplicates counted: the lost answers were not resent, or the resends were not recognised")
	}
}

// TestElasticsearchSlowBulk: every bulk request takes seconds; the proxy's
// latency does not depend on it, the spool absorbs the backlog.
func TestElasticsearchSlowBulk(t *testing.T) {
	t.Parallel()
	faultScenario(t, fault{delay: sizeDuration("SLOW_BULK", 3*time.Second, 10*time.Second)})
}

func requireRetried(t *testing.T, rl *instance, r *report) {
	t.Helper()
	retried := rl.metrics()["replaylink_ship_documents_retried_total"]
	r.add("retried_docs", retried)
	if retried == 0 {
		t.Errorf("replaylink_ship_documents_retried_total is 0 after an injected fault")
	}
}
