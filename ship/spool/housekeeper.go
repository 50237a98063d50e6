package spool

// The housekeeper deletes a segment as soon as the acknowledged position
// has passed all of it, without waiting for that position to be saved:
// saving needs a little free space, and on a full disk the space can only
// come from the deletion. This is crash safe because:
//
//   - Every record of a deleted segment was acknowledged, so none of them
//     has to be read again. A crash before the position is saved replays
//     from the older saved position: records of the segments that are still
//     there come again (at least once; Elasticsearch answers 409), and those
//     of deleted segments do not, which they need not.
//   - A missing segment is not damage. Segments are found by listing the
//     directory (listSegments), not by counting up from the saved position;
//     the reader goes on to the first segment at or after its position
//     (Reader.openNext), so a gap is invisible to it. Damage is only ever a
//     bad header or record inside a file that exists.
//   - A segment number is never used again while a position may name it:
//     numbers only grow within a process, and Open starts after both the
//     newest segment and the saved position. So a stale position naming a
//     deleted segment cannot be read as an offset into a different one.
//
// On a full disk, Append deletes acknowledged segments itself, without
// waiting for the next round (Queue.reclaimLocked), and empties the active
// segment too when all of it is acknowledged. Those are cut to zero bytes
// before they are deleted, so that the space comes back even while a file
// is still open; a zero-byte segment found by Open is such a leftover and
// is deleted too.

import (
	"errors"
	"os"
	"time"
)

// housekeeper runs on its own goroutine from Open to Close: every interval
// it fsyncs what was written, deletes segments that are fully acknowledged
// or were dropped for the cap, and saves the acknowledged position. Its
// fsyncs wait without holding a processor (fsyncer, fsync_linux.go).
func (q *Queue) housekeeper(interval time.Duration) {
	defer close(q.done)
	fs := newFsyncer()
	defer fs.close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			q.housekeep(fs)
		case <-q.stop:
			q.housekeep(fs)
			return
		}
	}
}

func (q *Queue) housekeep(fs *fsyncer) {
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
		keep(fs.sync(s.w))
		keep(s.w.Close())
	}
	if dirty && active != nil {
		// Append may have emptied and closed it meanwhile: nothing to sync.
		if err := fs.sync(active.w); !errors.Is(err, os.ErrClosed) {
			keep(err)
		}
	}
	if dirDirty {
		keep(syncDir(q.dir, fs.sync))
	}

	q.ackMu.Lock()
	acked, saved := q.acked, q.saved
	q.ackMu.Unlock()
	// Delete before saving: see the top of this file.
	for _, s := range q.takeAcked(acked) {
		keep(os.Remove(s.path))
	}
	for _, s := range dropped {
		keep(q.forgetDropped(s))
	}
	q.mu.Lock()
	if q.failing {
		q.reclaimActiveLocked()
	}
	q.mu.Unlock()
	if saved.Less(acked) {
		if err := writePosition(q.fs, q.dir, acked, fs.sync); err != nil {
			keep(err)
		} else {
			q.ackMu.Lock()
			q.saved = acked
			q.ackMu.Unlock()
		}
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

// takeAcked removes from the list the sealed segments that acked has
// passed. The active segment stays: reclaimActiveLocked empties it.
func (q *Queue) takeAcked(acked Position) []*Segment {
	q.mu.Lock()
	defer q.mu.Unlock()
	var done []*Segment
	for len(q.segments) > 0 {
		s := q.segments[0]
		if s == q.active || !s.sealed.Load() || acked.Less(s.end()) {
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
