package spool

import (
	"fmt"
	"time"
)

// Batch is records encoded ahead of one AppendBatch: the group commit of
// enrich's worker, which hands over a round of documents at a time. One
// write(2) for the round instead of one per document was most of the
// spool's cost on the request path (see docs/benchmarks.md). Encoding
// happens outside the queue's lock. A Batch is reusable after Reset and is
// not safe for concurrent use.
type Batch struct {
	q    *Queue
	buf  []byte
	ends []int // where each record ends in buf
}

// NewBatch returns an empty batch for q.
func (q *Queue) NewBatch() *Batch { return &Batch{q: q} }

// Add encodes a record at the end of the batch. An error (ErrTooLarge) is
// this record's alone: it is not in the batch, the others are unaffected.
func (b *Batch) Add(op Op, id, source []byte, created time.Time) error {
	start := len(b.buf)
	buf, err := encodeRecord(b.buf, op, id, source, created)
	if err != nil {
		return err
	}
	if n := int64(len(buf) - start); n > b.q.maxBytes/2 {
		b.buf = buf[:start]
		return fmt.Errorf("%w: %d bytes with --spool-max-bytes %d", ErrTooLarge, n, b.q.maxBytes)
	}
	b.buf = buf
	b.ends = append(b.ends, len(buf))
	return nil
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return len(b.ends) }

// Reset empties the batch, keeping its memory (up to 4 MiB: one huge round
// does not pin its buffer for the life of the process).
func (b *Batch) Reset() {
	if cap(b.buf) > 4<<20 {
		b.buf = nil
	}
	b.buf, b.ends = b.buf[:0], b.ends[:0]
}

// AppendBatch adds the batch's records to the spool, in order, as Append
// does each: when it returns, the first n records are in the kernel's
// hands. It writes as few times as the segments allow (once, unless the
// batch crosses into a new segment). When a write fails, n says how many
// records made it and err why the rest did not. The batch is not reset.
func (q *Queue) AppendBatch(b *Batch) (n int, err error) {
	if b.q != q {
		panic("spool: AppendBatch with another queue's batch")
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	start := 0
	for n < len(b.ends) {
		// The longest run of records that fits in the active segment, and
		// at least one (appendLocked rolls to a new segment for it).
		room := q.segBytes - segmentHeader
		if q.active != nil && !q.needRoll {
			room = q.segBytes - q.active.size.Load()
		}
		end := n + 1
		for end < len(b.ends) && int64(b.ends[end]-start) <= room {
			end++
		}
		if err = q.appendLocked(b.buf[start:b.ends[end-1]], end-n); err != nil {
			break
		}
		start, n = b.ends[end-1], end
	}
	q.noteAppendLocked(err)
	q.mu.Unlock()
	if err != nil {
		spoolErrors.Inc()
	}
	if n > 0 {
		q.wakeReader()
	}
	return n, err
}
