package capture

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// DefaultMaxLineBytes bounds a line when no limit is given.
const DefaultMaxLineBytes = 64 << 10

// LineReader splits an io.Reader into lines of at most a fixed length.
//
// Its buffer holds maxLineBytes+2 bytes (a full line, then "\r\n" or proof that
// the line is longer), comes from a pool and never grows: a line longer than
// the limit is returned cut, marked Truncated, as soon as the limit is passed,
// and the rest of it is skipped as it arrives. "\n" and "\r\n" end a line;
// bytes are otherwise returned untouched (no UTF-8 check).
//
// io.EOF is not sticky: after Next returns it, a later Next reads again, which
// is how the tailer follows a growing file. A line still missing its newline at
// EOF stays buffered; Final returns it when the input is known to be over.
//
// A LineReader is used by one goroutine.
type LineReader struct {
	r      io.Reader
	pooled *[]byte
	b      []byte
	max    int

	start int   // first byte of the current line in b
	scan  int   // b[start:scan] holds no '\n'
	end   int   // b[end:] is free
	base  int64 // offset in the input of b[0]
	skip  bool  // inside a cut line: drop bytes up to the next '\n'
	err   error // read error to return once the buffered lines are out
	empty int   // reads in a row that returned nothing

	// Arrival times: the latest read delivered b[chunkStart:end] at chunkTime;
	// a line starting before chunkStart began arriving at partialTime.
	chunkStart  int
	chunkTime   time.Time
	partialTime time.Time
	// arrival, when set, tells when the bytes of the latest Read arrived
	// (the pass-through takes the time before writing them on).
	arrival func() time.Time
}

// Position is where a LineReader stands in its input, enough to resume it
// later on the same input: the offset of the first byte not yet returned as
// part of a line, and whether that byte is inside a line that was already
// returned cut (whose rest must be skipped).
type Position struct {
	Offset     int64 `json:"offset"`
	InLongLine bool  `json:"in_long_line,omitempty"`
}

// NewLineReader returns a reader of lines of at most maxLineBytes bytes
// (DefaultMaxLineBytes when <= 0). Call Release when done with it.
func NewLineReader(r io.Reader, maxLineBytes int) *LineReader {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultMaxLineBytes
	}
	p := getBuffer(maxLineBytes + 2)
	return &LineReader{r: r, pooled: p, b: *p, max: maxLineBytes}
}

// SetPosition tells a fresh reader that its input is already at p.Offset, and
// whether it starts inside a long line to skip. Call it before the first Next.
func (lr *LineReader) SetPosition(p Position) {
	lr.base = p.Offset
	lr.skip = p.InLongLine
}

// Position reports what has been returned so far; see Position.
func (lr *LineReader) Position() Position {
	return Position{Offset: lr.base + int64(lr.start), InLongLine: lr.skip}
}

// Next fills l.Text, l.Truncated and l.Time (when the line's first byte was
// read) with the next complete line. l.Text is valid until the next call.
// It returns the reader's error (io.EOF at the end of the input so far) once
// no complete line is buffered.
func (lr *LineReader) Next(l *Line) error {
	for {
		if i := bytes.IndexByte(lr.b[lr.scan:lr.end], '\n'); i >= 0 {
			nl := lr.scan + i
			if lr.skip {
				lr.skip = false
				lr.start, lr.scan = nl+1, nl+1
				continue
			}
			lr.fill(l, lr.b[lr.start:nl])
			lr.start, lr.scan = nl+1, nl+1
			return nil
		}
		lr.scan = lr.end
		if lr.skip {
			lr.start = lr.end
		} else if lr.end-lr.start >= lr.max+2 {
			// max+2 bytes without '\n': even without a final '\r' the line
			// is longer than max. Hand its head out now, skip the rest.
			l.Text, l.Truncated, l.Time = lr.b[lr.start:lr.start+lr.max], true, lr.timeOf(lr.start)
			lr.skip = true
			lr.start, lr.scan = lr.end, lr.end
			return nil
		}
		if lr.err != nil {
			err := lr.err
			lr.err = nil
			return err
		}
		lr.read()
	}
}

// Final returns the buffered line that has no line terminator (the input's
// last line), if any; call it once the input is over (Next returned io.EOF
// and no more will come). It reports false when there is none.
func (lr *LineReader) Final(l *Line) bool {
	if lr.skip {
		// The head of this line was returned when it passed the limit.
		lr.skip = false
		lr.start, lr.scan = lr.end, lr.end
		return false
	}
	if lr.start == lr.end {
		return false
	}
	lr.fill(l, lr.b[lr.start:lr.end])
	lr.start, lr.scan = lr.end, lr.end
	return true
}

// Release returns the buffer to the pool; the reader must not be used after.
func (lr *LineReader) Release() {
	if lr.pooled != nil {
		putBuffer(lr.pooled)
		lr.pooled, lr.b = nil, nil
	}
}

func (lr *LineReader) fill(l *Line, text []byte) {
	l.Time = lr.timeOf(lr.start)
	if n := len(text); n > 0 && text[n-1] == '\r' {
		text = text[:n-1]
	}
	l.Truncated = len(text) > lr.max
	if l.Truncated {
		text = text[:lr.max]
	}
	l.Text = text
}

func (lr *LineReader) timeOf(i int) time.Time {
	if i < lr.chunkStart {
		return lr.partialTime
	}
	return lr.chunkTime
}

func (lr *LineReader) now() time.Time {
	if lr.arrival != nil {
		return lr.arrival()
	}
	return time.Now()
}

// maxEmptyReads is how many (0, nil) reads in a row are tolerated before
// giving up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// read moves the unfinished line to the front of the buffer and reads more
// after it, remembering when the bytes arrived.
func (lr *LineReader) read() {
	if lr.start < lr.end && lr.start >= lr.chunkStart {
		lr.partialTime = lr.chunkTime
	}
	if lr.start > 0 {
		n := copy(lr.b, lr.b[lr.start:lr.end])
		lr.base += int64(lr.start)
		lr.scan -= lr.start
		lr.chunkStart = max(0, lr.chunkStart-lr.start)
		lr.start, lr.end = 0, n
	}
	n, err := lr.r.Read(lr.b[lr.end:])
	if n > 0 {
		lr.chunkStart, lr.chunkTime = lr.end, lr.now()
		lr.end += n
		lr.empty = 0
	} else if err == nil {
		if lr.empty++; lr.empty >= maxEmptyReads {
			err = io.ErrNoProgress
		}
	}
	if err != nil {
		lr.empty = 0
		lr.err = err
	}
}

// Buffers are pooled per size: there is usually one size (the configured
// limit) per process, so this map stays tiny.
var bufferPools sync.Map // int -> *sync.Pool of *[]byte

func getBuffer(size int) *[]byte {
	if v, ok := bufferPools.Load(size); ok {
		if p, ok := v.(*sync.Pool).Get().(*[]byte); ok {
			return p
		}
	}
	b := make([]byte, size)
	return &b
}

func putBuffer(p *[]byte) {
	size := len(*p)
	v, ok := bufferPools.Load(size)
	if !ok {
		v, _ = bufferPools.LoadOrStore(size, new(sync.Pool))
	}
	v.(*sync.Pool).Put(p)
}
