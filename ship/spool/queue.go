package spool

// Who owns what:
//   - Writer state (the segment list, the active segment and its file, the
//     byte total, segments awaiting fsync or deletion, whether writes fail)
//     is guarded by Queue.mu. Append and AppendBatch run on any goroutine
//     and hold mu for one write(2) (AppendBatch: one per segment it fills); when the disk is full, also for deleting what is
//     acknowledged and one more try (reclaimLocked).
//   - Read state (current segment, offset, read buffer) belongs to the one
//     goroutine that calls Reader.Next; it shares only Segment.size,
//     Segment.sealed and Segment.state with the writers, all atomic.
//   - The acknowledged position is set by Ack from any goroutine under ackMu.
//     Saving it, fsyncs, and deleting files belong to the housekeeping
//     goroutine that Open starts and Close stops, except that Append on a
//     full disk deletes acknowledged segments itself; the saved position is
//     written only by the housekeeper (under ackMu, so Stats can read it).
//     Segments leave the list under mu, so each is deleted once. Lock
//     order: mu before ackMu.
//
// A full disk (ENOSPC, EDQUOT) costs the documents appended meanwhile, each
// refused with an error and counted by the caller, and nothing else; it
// heals by itself as soon as records are acknowledged. Open starts without
// an active segment when it cannot create one, and appends create it once
// there is room. Acknowledged segments are deleted without waiting for the
// position save, which needs room (housekeeper.go says why that is safe),
// by the housekeeper or at once by an append that found no room. An active
// segment whose records are all acknowledged is emptied and replaced then
// too, so a segment that never reaches its rolling size on a small disk
// still gives its space back. Segments get smaller on a small disk (at most
// a 16th of it) and after a full disk (at most an 8th of what the spool
// held), so that space comes back in small steps.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool: closed")

// Options configures a Queue. Zero values take the defaults.
type Options struct {
	Dir          string
	MaxBytes     int64         // cap on all segment files; default 1 GiB
	SegmentBytes int64         // a new segment starts at this size; default MaxBytes/16, within [64 KiB, 64 MiB], at most MaxBytes/4 and a 16th of the disk
	SyncInterval time.Duration // fsync and position save interval; default 200 ms
	Logger       zerolog.Logger

	fs fileSystem // nil: the operating system's; tests give one that fills up
}

// Stats describes a queue, counting since Open.
type Stats struct {
	Segments     int
	Bytes        int64  // on disk, all segments
	Appended     uint64 // records
	DroppedFull  uint64 // records dropped for the cap before they were read
	CorruptTails uint64 // damaged regions cut off or skipped
	CorruptBytes uint64
	Acked        Position // highest acknowledged
	Saved        Position // last written to acked.pos
}

// Queue is the spool: an append-only, segmented, at-least-once disk queue
// with a single reader. See the package documentation.
type Queue struct {
	dir      string
	maxBytes int64
	segBytes int64
	log      zerolog.Logger
	lock     *os.File
	notify   chan struct{}
	stop     chan struct{}
	done     chan struct{}
	reader   Reader
	fs       fileSystem

	mu        sync.Mutex
	closed    bool
	segments  []*Segment // oldest first; the last is active, when there is one
	active    *Segment   // nil when none could be created (a full disk)
	nextSeq   uint64     // of the next segment to create
	failing   bool       // the last append failed (logged once); the housekeeper reclaims the active segment once it can
	rollStuck bool       // a roll failed and appends go on into the old segment (logged once)
	bytes     int64
	dirty     bool       // the active segment has writes not yet fsynced
	dirDirty  bool       // a segment file was created since the last directory fsync
	unsynced  []*Segment // sealed; the housekeeper fsyncs and closes them
	dropped   []*Segment // removed for the cap; the housekeeper counts and deletes them
	needRoll  bool       // start a new segment before the next append: a failed write could not be cut back, or the reader found damage
	appended  uint64
	lostFull  uint64
	corrupt   uint64
	corruptSz uint64

	ackMu sync.Mutex
	acked Position
	saved Position // written only by Open and the housekeeper

	lastErr string // housekeeper only: the last logged error, to log changes only
}

// Open opens or creates the spool in opts.Dir, cuts off a torn tail left by
// a crash, and positions the reader after the last saved acknowledgement.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: no directory: give --spool-dir")
	}
	q := &Queue{
		dir:      opts.Dir,
		maxBytes: opts.MaxBytes,
		segBytes: opts.SegmentBytes,
		log:      opts.Logger,
		notify:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		fs:       opts.fs,
	}
	if q.fs == nil {
		q.fs = osFS{}
	}
	if q.maxBytes <= 0 {
		q.maxBytes = 1 << 30
	}
	if q.segBytes <= 0 {
		q.segBytes = min(max(q.maxBytes/16, 64<<10), 64<<20)
	}
	q.segBytes = min(q.segBytes, q.maxBytes/4)
	if q.segBytes < 4<<10 {
		return nil, fmt.Errorf("spool: --spool-max-bytes %d is too small: give at least 16KiB", q.maxBytes)
	}
	interval := opts.SyncInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if opts.SegmentBytes <= 0 {
		// A disk smaller than 16 default segments gets smaller segments:
		// space comes back a segment at a time.
		if d := diskBytes(q.dir); d > 0 {
			q.segBytes = min(q.segBytes, max(d/16, 64<<10))
		}
	}
	lock, err := lockDir(q.dir)
	if err != nil {
		return nil, err
	}
	q.lock = lock
	if err := q.load(); err != nil {
		q.closeSegments()
		unlockDir(lock)
		return nil, err
	}
	q.reader = Reader{q: q, pos: Position{Segment: q.saved.Segment}}
	q.acked = q.saved
	go q.housekeeper(interval)
	return q, nil
}

// load builds the segment list from the directory and starts a new active
// segment after the existing ones, or none on a full disk.
func (q *Queue) load() error {
	saved, err := readPosition(q.dir)
	if errors.Is(err, errBadPosition) {
		q.log.Warn().Str("file", positionFile).Msg("spool: saved position is damaged; replaying the whole spool (duplicates are ignored by Elasticsearch)")
		saved = Position{}
	} else if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	q.saved = saved
	seqs, err := listSegments(q.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	// A segment number is never used twice while a saved position may name
	// it: the position's segment may be gone (deleted once acknowledged),
	// and a new one under its number would be read from the old offset.
	q.nextSeq = saved.Segment + 1
	for i, seq := range seqs {
		q.nextSeq = max(q.nextSeq, seq+1)
		if seq < saved.Segment { // acknowledged; the last run stopped before deleting it
			os.Remove(segmentPath(q.dir, seq))
			continue
		}
		s, err := openSealedSegment(q.dir, seq)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if s.size.Load() == 0 { // emptied to be deleted (reclaimLocked) when the last run stopped
			os.Remove(s.path)
			continue
		}
		if seq == saved.Segment {
			s.readFrom = min(max(saved.Offset, segmentHeader), s.size.Load())
		}
		if i == len(seqs)-1 {
			if !q.repairTail(s) {
				continue
			}
		}
		q.segments = append(q.segments, s)
		q.bytes += s.size.Load()
	}
	if err := q.rollLocked(); err != nil {
		if !noSpace(err) {
			return fmt.Errorf("spool: %w", err)
		}
		q.failedLocked(err)
	}
	if err := syncDir(q.dir, writableFile.Sync); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	q.dirDirty = false
	updateGauges(q.bytes, len(q.segments))
	return nil
}

// repairTail scans the segment that was being written when the last process
// stopped, cuts off a torn or corrupt tail, and counts its records. It
// reports false when nothing of the segment is usable and it was removed.
func (q *Queue) repairTail(s *Segment) bool {
	end, records, err := scanValid(s.path, s.readFrom)
	if err != nil {
		q.log.Warn().Err(err).Str("segment", s.path).Msg("spool: cannot scan the last segment; reading it as it is")
		return true
	}
	size := s.size.Load()
	if end < size {
		q.countCorrupt(s.path, end, size-end)
		if end == 0 {
			os.Remove(s.path)
			return false
		}
		if err := os.Truncate(s.path, end); err != nil {
			q.log.Warn().Err(err).Str("segment", s.path).Msg("spool: cannot cut off the damaged tail; the reader will skip it")
			return true
		}
		s.size.Store(end)
		s.readFrom = min(s.readFrom, end)
	}
	s.records = records
	return true
}

func (q *Queue) countCorrupt(path string, at, n int64) {
	q.mu.Lock()
	q.corrupt++
	q.corruptSz += uint64(n)
	q.mu.Unlock()
	corruptTotal.Inc()
	corruptBytes.Add(int(n))
	q.log.Warn().Str("segment", path).Int64("offset", at).Int64("bytes", n).
		Msg("spool: skipped a torn or corrupt region (a crash during a write, or disk damage)")
}

// Append adds a document to the spool, with what to do with it (op). It
// returns when the record is in the kernel's hands (it survives the process
// being killed; fsync follows within the sync interval). id and source are
// not retained.
func (q *Queue) Append(op Op, id, source []byte, created time.Time) error {
	eb := encodedPool.Get().(*encodedBuf)
	defer func() {
		if cap(eb.b) <= 1<<20 {
			encodedPool.Put(eb)
		}
	}()
	var err error
	eb.b, err = encodeRecord(eb.b[:0], op, id, source, created)
	if err != nil {
		return err
	}
	n := int64(len(eb.b))
	if n > q.maxBytes/2 {
		return fmt.Errorf("%w: %d bytes with --spool-max-bytes %d", ErrTooLarge, n, q.maxBytes)
	}

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	err = q.appendLocked(eb.b, 1)
	q.noteAppendLocked(err)
	q.mu.Unlock()
	if err != nil {
		spoolErrors.Inc()
		return err
	}
	q.wakeReader()
	return nil
}

// appendLocked writes recs, count whole encoded records, to the active
// segment, rolling to a new one first when they do not fit.
func (q *Queue) appendLocked(recs []byte, count int) error {
	n := int64(len(recs))
	if q.active == nil || q.needRoll || q.active.size.Load()+n > q.segBytes && q.active.size.Load() > segmentHeader {
		if err := q.rollLocked(); err != nil {
			switch {
			case q.active != nil:
				// On a full disk the write fails too, and says so.
				if !q.rollStuck && !noSpace(err) {
					q.rollStuck = true
					q.log.Error().Err(err).Msg("spool: cannot start a new segment; appending to the current one")
				}
			case noSpace(err) && q.reclaimLocked():
				// room again, and a segment to write to
			default:
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	for q.bytes+n > q.maxBytes && len(q.segments) > 1 {
		q.dropOldestLocked()
	}
	err := q.writeLocked(recs, count)
	if err != nil && noSpace(err) && q.reclaimLocked() {
		err = q.writeLocked(recs, count)
	}
	return err
}

// writeLocked appends count encoded records to the active segment.
func (q *Queue) writeLocked(recs []byte, count int) error {
	a := q.active
	if _, err := a.w.Write(recs); err != nil {
		// Keep the segment made of whole records: cut a partial write back.
		if terr := a.w.Truncate(a.size.Load()); terr != nil {
			q.needRoll = true
		}
		return fmt.Errorf("spool: write %s: %w", a.path, err)
	}
	n := int64(len(recs))
	a.size.Add(n)
	a.records += int64(count)
	q.bytes += n
	q.dirty = true
	q.appended += uint64(count)
	return nil
}

// noteAppendLocked notes how an append went: a failure, or the first
// success after failures (logged, once each).
func (q *Queue) noteAppendLocked(err error) {
	if err != nil {
		q.failedLocked(err)
	} else if q.failing {
		q.failing = false
		q.log.Info().Msg("spool: writing documents again")
	}
}

// failedLocked notes a failed append, logging the first of a run. On a full
// disk, segments get smaller, down to an eighth of what the spool holds
// now (16 KiB at least), so that space comes back in smaller steps.
func (q *Queue) failedLocked(err error) {
	if noSpace(err) {
		q.segBytes = min(q.segBytes, max(q.bytes/8, 16<<10))
	}
	if q.failing {
		return
	}
	q.failing = true
	ev := q.log.Error().Err(err)
	if noSpace(err) {
		ev.Msg("spool: the disk is full; documents are refused and counted until acknowledged segments free space")
	} else {
		ev.Msg("spool: cannot write; documents are refused and counted until writing works again")
	}
}

// rollLocked seals the active segment, if there is one, and starts the next
// one. When the new file cannot be created, nothing changes.
func (q *Queue) rollLocked() error {
	s, err := createSegment(q.fs, q.dir, q.nextSeq)
	if err != nil {
		spoolErrors.Inc()
		return err
	}
	q.nextSeq++
	if old := q.active; old != nil {
		old.sealed.Store(true)
		q.unsynced = append(q.unsynced, old)
	}
	q.needRoll, q.rollStuck = false, false
	q.segments = append(q.segments, s)
	q.active = s
	q.bytes += segmentHeader
	q.dirDirty = true
	return nil
}

// reclaimLocked gives back at once the space of the segments whose records
// are all acknowledged, for an append that found the disk full: the sealed
// ones the housekeeper has not deleted yet, and the active one. It reports
// whether it freed any and there is an active segment to write to.
func (q *Queue) reclaimLocked() bool {
	acked := q.ackedPosition()
	freed := false
	for len(q.segments) > 0 {
		s := q.segments[0]
		if s == q.active || !s.sealed.Load() || acked.Less(s.end()) {
			break
		}
		q.segments = q.segments[1:]
		q.bytes -= s.size.Load()
		// Its file may still be open (the housekeeper fsyncs and closes
		// sealed segments later; the reader may not have moved on): cut it
		// first, so that the blocks come back now.
		os.Truncate(s.path, 0)
		if err := os.Remove(s.path); err != nil {
			q.log.Warn().Err(err).Str("segment", s.path).Msg("spool: cannot delete an emptied segment")
		}
		freed = true
	}
	if q.reclaimActiveLocked() {
		return true
	}
	if freed && q.active == nil {
		return q.rollLocked() == nil
	}
	return freed && q.active != nil
}

// ackedPosition returns the highest acknowledged position.
func (q *Queue) ackedPosition() Position {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	return q.acked
}

// reclaimActiveLocked gives back the space of an active segment whose
// records are all acknowledged: it empties and deletes the file and starts
// the next segment. It reports whether there is an active segment to write
// to afterwards. Deleting acknowledged records is safe at any time (see
// housekeeper.go); its number is not given to a new segment in this process.
func (q *Queue) reclaimActiveLocked() bool {
	a := q.active
	if a == nil || a.size.Load() <= segmentHeader {
		return false
	}
	if q.ackedPosition().Less(a.end()) {
		return false
	}
	// Truncate before closing and deleting: the blocks come back now, even
	// while the reader (which has read it all) still has the file open.
	a.sealed.Store(true)
	a.w.Truncate(0)
	a.w.Close()
	if err := os.Remove(a.path); err != nil {
		q.log.Warn().Err(err).Str("segment", a.path).Msg("spool: cannot delete an emptied segment")
	}
	q.segments = q.segments[:len(q.segments)-1]
	q.bytes -= a.size.Load()
	q.active = nil
	q.dirDirty = true
	q.wakeReader() // to move on from the segment and close it
	q.log.Info().Str("segment", a.path).Int64("bytes", a.size.Load()).
		Msg("spool: reclaimed the space of an acknowledged segment")
	return q.rollLocked() == nil
}

func (q *Queue) wakeReader() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// dropOldestLocked removes the oldest segment for the cap. The records the
// reader has not claimed yet are lost; the housekeeper counts them.
func (q *Queue) dropOldestLocked() {
	s := q.segments[0]
	q.segments = q.segments[1:]
	q.bytes -= s.size.Load()
	q.dropped = append(q.dropped, s)
	s.state.Or(droppedBit)
}

// Ack acknowledges every record up to p (a Record.End). Positions only move
// forward; an older p is ignored.
func (q *Queue) Ack(p Position) {
	q.ackMu.Lock()
	if q.acked.Less(p) {
		q.acked = p
	}
	q.ackMu.Unlock()
}

// Notify returns a channel that receives after appends, for a reader that
// found nothing to read and waits.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Reader returns the queue's one reader. Only one goroutine may use it.
func (q *Queue) Reader() *Reader { return &q.reader }

// Stats returns the queue's current figures.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	st := Stats{
		Segments: len(q.segments), Bytes: q.bytes, Appended: q.appended,
		DroppedFull: q.lostFull, CorruptTails: q.corrupt, CorruptBytes: q.corruptSz,
	}
	q.mu.Unlock()
	q.ackMu.Lock()
	st.Acked, st.Saved = q.acked, q.saved
	q.ackMu.Unlock()
	return st
}

// Close stops the housekeeper after a last fsync and save of the
// acknowledged position, and closes every file. The reader must have
// stopped calling Next.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	<-q.done
	q.reader.closeSegment()
	err := q.closeSegments()
	unlockDir(q.lock)
	return err
}

// closeSegments closes the active segment's file, removing it when it never
// got a record.
func (q *Queue) closeSegments() error {
	a := q.active
	if a == nil {
		return nil
	}
	err := a.w.Close()
	if a.size.Load() == segmentHeader {
		os.Remove(a.path)
	}
	return err
}

func unlockDir(f *os.File) {
	if f != nil {
		f.Close() // releases the flock
	}
}
