package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader streams records from disk in append order. It is owned by one
// goroutine; see Queue.Reader. Memory is one read buffer and the largest
// record read so far.
type Reader struct {
	q   *Queue
	pos Position // where to go on: the segment, and the offset in it once opened

	seg     *Segment
	version uint32 // of the open segment's format
	f       *os.File
	lim     sizeLimited
	br      *bufio.Reader
	hdr     [recordHeader]byte
	buf     []byte
}

// Next returns the next record, or ok false when there is none yet (wait on
// Queue.Notify). A damaged region is skipped and counted, not returned as
// an error; errors are I/O failures, after which Next may be called again.
func (r *Reader) Next() (rec Record, ok bool, err error) {
	for {
		if r.seg == nil {
			if !r.openNext() {
				return Record{}, false, nil
			}
			continue
		}
		s := r.seg
		if s.state.Load()&droppedBit != 0 {
			r.moveOn()
			continue
		}
		sealed := s.sealed.Load()
		size := s.size.Load()
		if r.pos.Offset >= size {
			if !sealed {
				return Record{}, false, nil
			}
			r.moveOn()
			continue
		}
		r.lim.limit = size
		if size-r.pos.Offset < recordHeader {
			r.skipCorrupt(size)
			continue
		}
		if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
			if r.damaged(err, size) {
				continue
			}
			return Record{}, false, err
		}
		n, crc, valid := parseHeader(r.hdr[:])
		if !valid || r.pos.Offset+recordHeader+int64(n) > size {
			r.skipCorrupt(size)
			continue
		}
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		r.buf = r.buf[:n]
		if _, err := io.ReadFull(r.br, r.buf); err != nil {
			if r.damaged(err, size) {
				continue
			}
			return Record{}, false, err
		}
		rec, valid := decodePayload(r.buf, crc, r.version)
		if !valid {
			r.skipCorrupt(size)
			continue
		}
		if !claim(s) {
			r.moveOn() // dropped for the cap while we read
			continue
		}
		r.pos.Offset += recordHeader + int64(n)
		rec.End = r.pos
		return rec, true, nil
	}
}

// claim counts a record as handed out, unless the segment was dropped.
func claim(s *Segment) bool {
	for {
		st := s.state.Load()
		if st&droppedBit != 0 {
			return false
		}
		if s.state.CompareAndSwap(st, st+1) {
			return true
		}
	}
}

// openNext opens the first segment at or after r.pos.Segment.
func (r *Reader) openNext() bool {
	r.q.mu.Lock()
	var s *Segment
	for _, c := range r.q.segments {
		if c.Seq >= r.pos.Segment {
			s = c
			break
		}
	}
	r.q.mu.Unlock()
	if s == nil {
		return false
	}
	off := s.readFrom
	if s.Seq == r.pos.Segment && r.pos.Offset > off {
		off = r.pos.Offset // reopening after an I/O error
	}
	r.pos = Position{Segment: s.Seq, Offset: off}
	r.seg = s
	f, err := os.Open(s.path)
	if err != nil {
		r.q.log.Error().Err(err).Str("segment", s.path).Msg("spool: cannot open a segment; skipping it")
		r.skipCorrupt(s.size.Load())
		return true
	}
	var h [segmentHeader]byte
	r.version = 0
	if _, err := f.ReadAt(h[:], 0); err == nil {
		r.version = segmentVersion(h[:])
	}
	if r.version == 0 {
		f.Close()
		r.pos.Offset = 0
		r.skipCorrupt(s.size.Load())
		return true
	}
	r.f = f
	r.lim = sizeLimited{f: f, off: off}
	if r.br == nil {
		r.br = bufio.NewReaderSize(&r.lim, 256<<10)
	} else {
		r.br.Reset(&r.lim)
	}
	return true
}

// damaged reports whether a read error means the file is shorter than its
// recorded size (then the rest is skipped as corrupt); other errors close
// the segment so that the next call reopens it where it stopped.
func (r *Reader) damaged(err error, size int64) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		r.skipCorrupt(size)
		return true
	}
	r.closeSegment()
	return false
}

// skipCorrupt counts the rest of the current segment as damaged and goes on
// to the next one. Damage in the segment being written (which only failing
// hardware can cause) also makes appends move on to a new segment, which
// the reader will find.
func (r *Reader) skipCorrupt(size int64) {
	if n := size - r.pos.Offset; n > 0 {
		r.q.countCorrupt(r.seg.path, r.pos.Offset, n)
	}
	if !r.seg.sealed.Load() {
		r.q.mu.Lock()
		if r.q.active == r.seg {
			r.q.needRoll = true
		}
		r.q.mu.Unlock()
	}
	r.moveOn()
}

func (r *Reader) moveOn() {
	next := r.seg.Seq + 1
	r.closeSegment()
	r.pos = Position{Segment: next}
}

func (r *Reader) closeSegment() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.seg = nil
}

// sizeLimited reads a file up to limit, the committed size of its segment:
// bytes past it may belong to a write that is failing and being cut back.
type sizeLimited struct {
	f          *os.File
	off, limit int64
}

func (l *sizeLimited) Read(p []byte) (int, error) {
	if l.off >= l.limit {
		return 0, io.EOF
	}
	if rem := l.limit - l.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.f.ReadAt(p, l.off)
	l.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("spool: read %s: %w", l.f.Name(), err)
	}
	return n, err
}
