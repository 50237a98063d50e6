package enrich

import (
	"time"
	"unicode/utf8"
	"unsafe"
)

// Hand-written JSON output for the hot path: every document is appended to a
// reused []byte, with no reflection and no allocation.

const hexDigits = "0123456789abcdef"

// plainASCII marks the bytes a JSON string holds as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Quotes, backslashes and every
// control character (C0, DEL and C1) are escaped, invalid UTF-8 becomes
// U+FFFD, and U+2028/U+2029 are escaped because they end lines in JavaScript,
// where OpenReplay shows the message.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, false)
	return append(dst, '"')
}

// appendStr is appendString for a Go string.
func appendStr(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Read-only view of the string's bytes: appendEscaped never writes to s.
	dst = appendEscaped(dst, unsafe.Slice(unsafe.StringData(s), len(s)), false)
	return append(dst, '"')
}

// appendText is appendString for text a backend or a client wrote. It also
// drops ANSI escape sequences (colours, cursor moves, window titles) and C1
// controls: a log line must not be able to repaint a terminal or hide text
// from whoever reads the document.
func appendText(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, true)
	return append(dst, '"')
}

func appendEscaped(dst, s []byte, stripANSI bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
			case r >= 0x80 && r <= 0x9f && stripANSI:
				// C1 controls: 8-bit forms of ESC sequences (U+009B is CSI).
				dst = append(dst, s[start:i]...)
				i += size
				if r == 0x9b {
					i = skipCSI(s, i)
				}
				start = i
				continue
			case r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
				dst = append(dst, s[start:i]...)
				dst = appendUnicodeEscape(dst, r)
			default:
				i += size
				continue
			}
			i += size
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c == 0x1b && stripANSI:
			i = skipANSI(s, i)
			start = i
			continue
		case c == '"':
			dst = append(dst, '\\', '"')
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = appendUnicodeEscape(dst, rune(c))
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// escapedPrefix returns the longest prefix of s whose escaped form (as
// appendEscaped writes it) is at most max bytes, cut at a character or
// escape-sequence boundary, and whether it is shorter than s. It mirrors
// appendEscaped's cases; FuzzEscapedPrefix holds them together.
func escapedPrefix(s []byte, max int, stripANSI bool) ([]byte, bool) {
	if len(s) <= max/6 { // no byte escapes to more than 6
		return s, false
	}
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		next, size := i+1, 6
		switch {
		case plainASCII[c]:
			size = 1
		case c >= utf8.RuneSelf:
			r, sz := utf8.DecodeRune(s[i:])
			next = i + sz
			switch {
			case r == utf8.RuneError && sz == 1:
			case r >= 0x80 && r <= 0x9f && stripANSI:
				size = 0
				if r == 0x9b {
					next = skipCSI(s, next)
				}
			case r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
			default:
				size = sz
			}
		case c == 0x1b && stripANSI:
			next, size = skipANSI(s, i), 0
		case c == '"', c == '\\', c == '\n', c == '\r', c == '\t':
			size = 2
		}
		if n+size > max {
			return s[:i], true
		}
		n += size
		i = next
	}
	return s, false
}

func appendUnicodeEscape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// skipANSI returns the index just past the escape sequence that starts with
// the ESC at s[i]: CSI (ESC [ ... final), OSC and other strings (ESC ] ...
// BEL or ST), and the short two- or three-byte forms. An unterminated
// sequence runs to the end of s.
func skipANSI(s []byte, i int) int {
	i++ // ESC
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '[':
		return skipCSI(s, i+1)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		for i++; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	case c >= 0x20 && c <= 0x2f: // nF: intermediates, then a final byte
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e:
		return i + 1
	}
	return i
}

// skipCSI returns the index past the parameters and final byte of a control
// sequence whose introducer ends just before s[i].
func skipCSI(s []byte, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++ // parameter and intermediate bytes
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++ // final byte
	}
	return i
}

// stripANSIInto appends s without its ANSI escape sequences.
func stripANSIInto(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if s[i] != 0x1b {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		i = skipANSI(s, i)
		start = i
	}
	return append(dst, s[start:]...)
}

const markerWord = "openreplaysession"

// defuseMarkers rewrites every "openReplaySession.id" in b to
// "openReplaySession_id", in place. OpenReplay finds a session's documents by
// the phrase openReplaySession.id=N in message; defusing the phrase wherever
// replaylink did not write it means a URL path or a log line can neither put
// a document into another user's session view nor get around the marking
// policy. Elasticsearch's standard analyzer keeps "openreplaysession_id" as
// one token, so the phrase no longer matches. The match ignores case the way
// that analyzer lowercases, including U+0130 (İ), which lowercases to 'i'.
func defuseMarkers(b []byte) {
	for i := len(markerWord); i < len(b); i++ {
		if b[i] != '.' {
			continue
		}
		n := foldLen(b[i+1:], 'i')
		if n == 0 || foldLen(b[i+1+n:], 'd') == 0 {
			continue
		}
		j := i
		for k := len(markerWord) - 1; k >= 0 && j > 0; k-- {
			switch c := b[j-1]; {
			case c|0x20 == markerWord[k] && isASCIILetter(c):
				j--
			case markerWord[k] == 'i' && j >= 2 && b[j-2] == 0xc4 && c == 0xb0:
				j -= 2
			default:
				j = -1
			}
			if j < 0 {
				break
			}
			if k == 0 {
				b[i] = '_'
			}
		}
	}
}

// foldLen returns the length of the letter at the start of b when it
// lowercases to the ASCII letter c, else 0.
func foldLen(b []byte, c byte) int {
	switch {
	case len(b) > 0 && b[0]|0x20 == c && isASCIILetter(b[0]):
		return 1
	case c == 'i' && len(b) > 1 && b[0] == 0xc4 && b[1] == 0xb0:
		return 2
	}
	return 0
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// timeLayout is RFC 3339 in UTC with milliseconds, as OpenReplay and the
// Elasticsearch date type read it.
const timeLayout = "2006-01-02T15:04:05.000Z"

func appendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, timeLayout)
}
