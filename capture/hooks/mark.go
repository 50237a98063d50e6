package hooks

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Nonce is a run's secret part of every mark: 16 lower-case hex digits.
// The zero Nonce means no hooks: nothing is stripped.
type Nonce [16]byte

// NewNonce returns a random nonce.
func NewNonce() Nonce {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read does not fail
	var n Nonce
	hex.Encode(n[:], raw[:])
	return n
}

// ParseNonce reads a nonce as the hooks read it (surrounding white space
// allowed, for a nonce file).
func ParseNonce(s []byte) (Nonce, error) {
	s = bytes.TrimSpace(s)
	var n Nonce
	if len(s) != len(n) || !isLowerHex(s) {
		return n, fmt.Errorf("hook nonce %q: want 16 lower-case hex digits", s)
	}
	copy(n[:], s)
	return n, nil
}

// IsZero says whether n is the zero Nonce (no hooks).
func (n Nonce) IsZero() bool { return n == Nonce{} }

func (n Nonce) String() string { return string(n[:]) }

// Mark is a mark as read, what it says of a line: the request's span id, and whether
// the line was written by a thread or task derived from the one serving it.
type Mark struct {
	Span    [8]byte
	Derived bool
}

// IsZero says whether m is no mark (an unmarked line).
func (m Mark) IsZero() bool { return m == Mark{} }

const (
	markPrefix = "\x1b_rl1;"
	markEnd    = "\x1b\\"
	// MarkLen is the length of a mark: prefix, nonce, ';', kind, span, end.
	MarkLen = len(markPrefix) + 16 + 1 + 1 + 16 + len(markEnd)
)

// AppendMark appends m as a mark with nonce n, as a hook writes it
// (for tests and benchmarks of the Go side).
func AppendMark(dst []byte, n Nonce, m Mark) []byte {
	dst = append(dst, markPrefix...)
	dst = append(dst, n[:]...)
	dst = append(dst, ';')
	if m.Derived {
		dst = append(dst, 'd')
	} else {
		dst = append(dst, 'r')
	}
	dst = hex.AppendEncode(dst, m.Span[:])
	return append(dst, markEnd...)
}

// Strip removes every mark with nonce n from line, in place, and returns
// what is left with the first mark's Mark (zero when there was none). A
// mark with another nonce, or malformed, is text and stays.
func Strip(line []byte, n Nonce) ([]byte, Mark) {
	var first Mark
	found := false
	for from := 0; ; {
		i := bytes.Index(line[from:], []byte(markPrefix))
		if i < 0 {
			return line, first
		}
		i += from
		m, ok := parseMark(line[i:], n)
		if !ok {
			from = i + 1
			continue
		}
		if !found {
			first, found = m, true
		}
		line = append(line[:i], line[i+MarkLen:]...)
		from = i
	}
}

// parseMark reads a mark with nonce n at the start of b.
func parseMark(b []byte, n Nonce) (Mark, bool) {
	var m Mark
	if len(b) < MarkLen {
		return m, false
	}
	b = b[len(markPrefix):MarkLen]
	if !bytes.Equal(b[:16], n[:]) || b[16] != ';' || string(b[34:]) != markEnd {
		return m, false
	}
	switch b[17] {
	case 'r':
	case 'd':
		m.Derived = true
	default:
		return m, false
	}
	span := b[18:34]
	if !isLowerHex(span) {
		return m, false
	}
	hex.Decode(m.Span[:], span)
	return m, m.Span != [8]byte{}
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// StripWriter passes what is written to it on to W without the marks of
// Nonce, byte for byte otherwise. A mark may come split across writes:
// the bytes that may begin one are held back until the next write shows
// whether they do (at most MarkLen-1 bytes, only when they match a
// mark's first bytes), or until Flush. It is used by one goroutine.
type StripWriter struct {
	W     io.Writer
	Nonce Nonce
	held  []byte
	buf   []byte
}

// ErrShortWrite is StripWriter's error when W took less than it was given.
var errShortWrite = errors.New("hooks: short write")

// Write strips marks from p and writes the rest to W. It reports len(p)
// when W took everything it was given.
func (w *StripWriter) Write(p []byte) (int, error) {
	if len(w.held) == 0 && bytes.IndexByte(p, 0x1b) < 0 {
		return w.write(p, len(p)) // the common case: no escape at all
	}
	w.buf = append(append(w.buf[:0], w.held...), p...)
	w.held = w.held[:0]
	out, _ := Strip(w.buf, w.Nonce)
	// Hold back a tail that may be the start of a mark.
	for i := max(0, len(out)-(MarkLen-1)); i < len(out); i++ {
		if out[i] == 0x1b && maybeMark(out[i:], w.Nonce) {
			w.held = append(w.held, out[i:]...)
			out = out[:i]
			break
		}
	}
	return w.write(out, len(p))
}

// Flush writes what is held back: the input is over.
func (w *StripWriter) Flush() error {
	if len(w.held) == 0 {
		return nil
	}
	_, err := w.write(w.held, 0)
	w.held = w.held[:0]
	return err
}

func (w *StripWriter) write(b []byte, n int) (int, error) {
	if len(b) == 0 {
		return n, nil
	}
	k, err := w.W.Write(b)
	if err == nil && k < len(b) {
		err = errShortWrite
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// maybeMark says whether b (shorter than a mark) is how a mark with
// nonce n begins.
func maybeMark(b []byte, n Nonce) bool {
	for i, c := range b {
		var ok bool
		switch {
		case i < len(markPrefix):
			ok = c == markPrefix[i]
		case i < len(markPrefix)+16:
			ok = c == n[i-len(markPrefix)]
		case i == len(markPrefix)+16:
			ok = c == ';'
		case i == len(markPrefix)+17:
			ok = c == 'r' || c == 'd'
		case i < MarkLen-len(markEnd):
			ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		default:
			ok = c == markEnd[i-(MarkLen-len(markEnd))]
		}
		if !ok {
			return false
		}
	}
	return true
}
