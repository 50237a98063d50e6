package ship

import (
	"testing"
	"time"
)

// TestIdleFlushDoesNotWaitForTheInterval: when the spool is read to its end
// and no bulk request is in flight, a partial shipment goes after idleFlush,
// not after --flush-interval (here a minute, longer than the test waits).
// Against the real node.
func TestIdleFlushDoesNotWaitForTheInterval(t *testing.T) {
	n := realNode(t)
	index := testIndex(t, n)
	opts := fastOptions(t, n.url)
	opts.Index, opts.InstallTemplate = index, true
	opts.FlushInterval, opts.FlushBytes = time.Minute, 5_000_000
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWithin(t, p, 30*time.Second)
	for round := range 2 { // the second after the first was delivered: idle again
		publishN(t, p, 3*round, 3)
		deadline := time.Now().Add(15 * time.Second)
		for p.Stats().Shipped < uint64(3*(round+1)) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d documents shipped after 15 s; a partial shipment waited for --flush-interval (1 min)", round, p.Stats().Shipped)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := n.count(index); got != 6 {
		t.Errorf("index holds %d documents, want 6", got)
	}
}
