package faults

import (
	"context"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestOutageNodeStoppedUnderLoad: the real search node is stopped under
// steady load for outageTime, then started again (`make test` runs this in
// its outage phase, alone). The proxy keeps serving throughout; afterwards
// every request is indexed exactly once and fresh ones within seconds.
func TestOutageNodeStoppedUnderLoad(t *testing.T) {
	node := estest.Control(t)
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, t.TempDir())})
	l := newLoad(t, "r", rl.Listen)

	ctx, stopLoad := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx, rate, time.Hour); close(done) }()
	time.Sleep(3 * time.Second)
	down := time.Now()
	node.Stop(t)
	time.Sleep(outageTime)
	node.Start(t)
	r.add("outage_s", seconds(time.Since(down)))
	time.Sleep(3 * time.Second)
	stopLoad()
	<-done

	l.requireAllServed(r)
	checkConservation(t, x, l, r, catchUp)
	m := rl.metrics()
	r.add("retried_docs", m["replaylink_ship_documents_retried_total"])
	rl.checkMemory(r)
}
