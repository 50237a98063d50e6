package spool

// Who owns what:
//   - Writer state (the segment list, the active segment and its file, the
//     byte total, segments awaiting fsync or deletion) is guarded by
//     Queue.mu. Append runs on any goroutine and holds mu for one write(2).
//   - Read state (current segment, offset, read buffer) belongs to the one
//     goroutine that calls Reader.Next; it shares only Segment.size,
//     Segment.sealed and Segment.state with the writers, all atomic.
//   - The acknowledged position is set by Ack from any goroutine under ackMu.
//     Saving it, fsyncs, and deleting files belong to the housekeeping
//     goroutine that Open starts and Close stops; the saved position is
//     written only there (under ackMu, so Stats can read it).

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
	SegmentBytes int64         // a new segment starts at this size; default MaxBytes/16, within [64 KiB, 64 MiB] and at most MaxBytes/4
	SyncInterval time.Duration // fsync and position save interval; default 200 ms
	Logger       zerolog.Logger
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

	mu        sync.Mutex
	closed    bool
	segments  []*Segment // oldest first; the last is active
	active    *Segment
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
// segment after the existing ones.
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
	next := saved.Segment + 1
	for i, seq := range seqs {
		next = max(next, seq+1)
		if seq < saved.Segment { // acknowledged; the last run stopped before deleting it
			os.Remove(segmentPath(q.dir, seq))
			continue
		}
		s, err := openSealedSegment(q.dir, seq)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
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
	a, err := createSegment(q.dir, next)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	q.segments = append(q.segments, a)
	q.active = a
	q.bytes += segmentHeader
	if err := syncDir(q.dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
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

// Append adds a document to the spool. It returns when the record is in the
// kernel's hands (it survives the process being killed; fsync follows
// within the sync interval). id and source are not retained.
func (q *Queue) Append(id, source []byte, created time.Time) error {
	eb := encodedPool.Get().(*encodedBuf)
	defer func() {
		if cap(eb.b) <= 1<<20 {
			encodedPool.Put(eb)
		}
	}()
	var err error
	eb.b, err = encodeRecord(eb.b[:0], id, source, created)
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
	if q.needRoll || q.active.size.Load()+n > q.segBytes && q.active.size.Load() > segmentHeader {
		q.rollLocked()
	}
	for q.bytes+n > q.maxBytes && len(q.segments) > 1 {
		q.dropOldestLocked()
	}
	a := q.active
	if _, err := a.w.Write(eb.b); err != nil {
		// Keep the segment made of whole records: cut a partial write back.
		if terr := a.w.Truncate(a.size.Load()); terr != nil {
			q.needRoll = true
		}
		q.mu.Unlock()
		spoolErrors.Inc()
		return fmt.Errorf("spool: write %s: %w", a.path, err)
	}
	a.size.Add(n)
	a.records++
	q.bytes += n
	q.dirty = true
	q.appended++
	q.mu.Unlock()

	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

// rollLocked seals the active segment and starts the next one. When the new
// file cannot be created, appends go on into the old one.
func (q *Queue) rollLocked() {
	old := q.active
	s, err := createSegment(q.dir, old.Seq+1)
	if err != nil {
		spoolErrors.Inc()
		q.log.Error().Err(err).Msg("spool: cannot start a new segment; appending to the current one")
		return
	}
	q.needRoll = false
	old.sealed.Store(true)
	q.unsynced = append(q.unsynced, old)
	q.segments = append(q.segments, s)
	q.active = s
	q.bytes += segmentHeader
	q.dirDirty = true
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
	if a == nil || a.w == nil {
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
