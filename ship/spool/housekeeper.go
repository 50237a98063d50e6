package spool

import (
	"os"
	"time"
)

// housekeeper runs on its own goroutine from Open to Close: every interval
// it fsyncs what was written, saves the acknowledged position, and deletes
// segments that are fully acknowledged or were dropped for the cap.
func (q *Queue) housekeeper(interval time.Duration) {
	defer close(q.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			q.housekeep()
		case <-q.stop:
			q.housekeep()
			return
		}
	}
}

func (q *Queue) housekeep() {
	q.mu.Lock()
	active, dirty, dirDirty := q.active, q.dirty, q.dirDirty
	unsynced, dropped := q.unsynced, q.dropped
	q.dirty, q.dirDirty, q.unsynced, q.dropped = false, false, nil, nil
	q.mu.Unlock()

	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	// fsync outside the lock: a slow disk must not hold up Append.
	for _, s := range unsynced {
		keep(s.w.Sync())
		keep(s.w.Close())
	}
	if dirty {
		keep(active.w.Sync())
	}
	if dirDirty {
		keep(syncDir(q.dir))
	}

	q.ackMu.Lock()
	acked, saved := q.acked, q.saved
	q.ackMu.Unlock()
	if saved.Less(acked) {
		if err := writePosition(q.dir, acked); err != nil {
			keep(err)
		} else {
			q.ackMu.Lock()
			q.saved = acked
			q.ackMu.Unlock()
			saved = acked
		}
	}
	// Delete only what the saved position has passed: after a crash the
	// position on disk must never point past a segment that is gone.
	for _, s := range q.takeAcked(saved) {
		keep(os.Remove(s.path))
	}
	for _, s := range dropped {
		keep(q.forgetDropped(s))
	}

	q.mu.Lock()
	bytes, n := q.bytes, len(q.segments)
	q.mu.Unlock()
	updateGauges(bytes, n)

	if firstErr != nil {
		spoolErrors.Inc()
		if msg := firstErr.Error(); msg != q.lastErr {
			q.lastErr = msg
			q.log.Error().Err(firstErr).Msg("spool: housekeeping failed (fsync, position save or delete); retrying every interval")
		}
	} else if q.lastErr != "" {
		q.lastErr = ""
		q.log.Info().Msg("spool: housekeeping works again")
	}
}

// takeAcked removes from the list the sealed segments that saved has passed.
func (q *Queue) takeAcked(saved Position) []*Segment {
	q.mu.Lock()
	defer q.mu.Unlock()
	var done []*Segment
	for len(q.segments) > 1 {
		s := q.segments[0]
		if !s.sealed.Load() || !(s.Seq < saved.Segment || s.Seq == saved.Segment && saved.Offset >= s.size.Load()) {
			break
		}
		done = append(done, s)
		q.segments = q.segments[1:]
		q.bytes -= s.size.Load()
	}
	return done
}

// forgetDropped counts the records a segment dropped for the cap took with
// it (those the reader had not claimed) and deletes its file.
func (q *Queue) forgetDropped(s *Segment) error {
	claimed := s.state.Load() &^ droppedBit
	records := s.records
	if records < 0 {
		var err error
		if records, err = countRecords(s.path, s.readFrom, s.size.Load()); err != nil {
			q.log.Error().Err(err).Str("segment", s.path).Msg("spool: cannot count the records of a dropped segment")
		}
	}
	lost := max(records-claimed, 0)
	q.mu.Lock()
	q.lostFull += uint64(lost)
	q.mu.Unlock()
	droppedFull.Add(int(lost))
	q.log.Warn().Str("segment", s.path).Int64("documents", lost).Int64("bytes", s.size.Load()).
		Msg("spool: full (--spool-max-bytes); dropped the oldest segment")
	return os.Remove(s.path)
}
