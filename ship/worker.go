package ship

import "context"

// A destination is where shipments go out: Elasticsearch (bulkDestination)
// or the embedded default's output (outputDestination). Each worker gets
// its own deliverer.
type destination interface {
	deliverer() deliverer
	// eager destinations get a shipment as soon as the reader has caught
	// up with the spool; the others wait for FlushBytes, FlushInterval or
	// idleFlush.
	eager() bool
}

// A deliverer sends shipments to its destination, one at a time: a worker's
// own connection state (bulk.go) or the shared output (output.go).
type deliverer interface {
	// deliver returns nil when every document of b is settled (shipped or
	// dead-lettered) and b may be acknowledged, or ctx's error.
	deliver(ctx context.Context, b *shipment) error
}

// work is a worker goroutine: it delivers shipments and acknowledges them.
func (p *Shipper) work(d deliverer) {
	defer p.wg.Done()
	for b := range p.shipments {
		if d.deliver(p.ctx, b) == nil {
			p.acks.settle(b.seq, b.end)
		}
		b.release(p.opts.FlushBytes)
		if p.inflight.Add(-1) == 0 {
			select { // the reader may hold a shipment for an idle moment
			case p.idle <- struct{}{}:
			default:
			}
		}
	}
}
