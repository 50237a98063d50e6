package ship

import "time"

// idleFlush is how long a shipment waits for more documents when the reader
// has caught up with the spool and no shipment is in flight: the workers have
// nothing better to do, so it goes without waiting for FlushInterval.
// Under load a shipment still fills for idleFlush, so bulk requests stay few
// (at most 20 a second from an idle shipper); the last partial shipment of
// a backlog, and every document at low load, reach Elasticsearch in about
// idleFlush instead of FlushInterval.
const idleFlush = 50 * time.Millisecond

// read is the reader goroutine: it streams the spool into shipments, cut at
// FlushBytes, at FlushInterval, or after idleFlush when the workers are
// idle and the spool is read to its end, and hands them to the workers.
// When they are all busy it waits, and the spool grows on disk instead of
// memory.
func (p *Shipper) read() {
	defer p.wg.Done()
	defer close(p.shipments)
	r := p.queue.Reader()
	eager := p.dest.eager()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		b        *shipment // being cut; nil: none
		seq      uint64    // the next shipment's number, for in-order acknowledgements
		draining bool      // Close asked: ship what the spool holds, then stop
		failing  bool      // the spool could not be read (said once, until it can)
	)
	dispatch := func() bool {
		timer.Stop()
		b.seq = seq
		seq++
		p.inflight.Add(1)
		select {
		case p.shipments <- b:
			b = nil
			return true
		case <-p.ctx.Done():
			return false
		}
	}
	for {
		rec, ok, err := r.Next()
		if err != nil {
			if !failing {
				failing = true
				p.log.Error().Err(err).Msg("ship: cannot read the spool; retrying")
			}
			select {
			case <-time.After(p.opts.BackoffMin):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		failing = false
		if ok {
			if b == nil {
				b = newShipment()
				b.started = time.Now()
				timer.Reset(min(idleFlush, p.opts.FlushInterval))
			}
			b.add(rec.Op, rec.ID, rec.Source, rec.Created, p.opts.DataStream)
			b.end = rec.End
			if len(b.body) >= p.opts.FlushBytes || time.Since(b.started) >= p.opts.FlushInterval {
				if !dispatch() {
					return
				}
			}
			continue
		}
		// Read to the end of the spool.
		if b != nil && (eager || draining || p.inflight.Load() == 0 && time.Since(b.started) >= idleFlush) {
			if !dispatch() {
				return
			}
			continue
		}
		if draining {
			return
		}
		select {
		case <-p.queue.Notify():
		case <-p.idle:
		case <-timer.C:
			if b == nil {
				break
			}
			if age := time.Since(b.started); age < p.opts.FlushInterval && p.inflight.Load() > 0 {
				timer.Reset(p.opts.FlushInterval - age) // idleFlush passed with a shipment in flight
				break
			}
			if !dispatch() {
				return
			}
		case <-p.drain:
			draining = true
		case <-p.ctx.Done():
			return
		}
	}
}
