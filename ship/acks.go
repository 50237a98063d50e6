package ship

import (
	"sync"

	"github.com/replaylink/replaylink/ship/spool"
)

// ackTracker turns shipments settled in any order (workers run in parallel)
// into spool acknowledgements in order: the saved position only passes
// records that are all settled. It holds one entry per shipment in flight.
type ackTracker struct {
	ack func(spool.Position)

	mu      sync.Mutex
	next    uint64 // seq of the oldest shipment not yet settled
	settled map[uint64]spool.Position
}

func newAckTracker(ack func(spool.Position)) *ackTracker {
	return &ackTracker{ack: ack, settled: make(map[uint64]spool.Position)}
}

// settle records that shipment seq, ending at end, is done with.
func (t *ackTracker) settle(seq uint64, end spool.Position) {
	t.mu.Lock()
	t.settled[seq] = end
	var upTo spool.Position
	advanced := false
	for {
		e, ok := t.settled[t.next]
		if !ok {
			break
		}
		delete(t.settled, t.next)
		t.next++
		upTo, advanced = e, true
	}
	t.mu.Unlock()
	if advanced {
		t.ack(upTo)
	}
}
