package enrich

import (
	"unicode/utf8"

	"github.com/replaylink/replaylink/internal/jsonscan"
)

// Reading JSON lines without reflection: the parser walks the object once,
// records the members it knows (lineParser.field) by their lowercase dotted
// path, and skips the rest. Whitespace is skipped by jsonscan, the JSON
// scanning core the memory store and ship use too; the walk is enrich's own
// (lowercased paths, arrays and bare words recorded, logfmt's escapes).

func (lp *lineParser) parseJSON(b []byte) bool {
	i, ok := lp.object(b, 0, 0)
	return ok && jsonscan.SkipSpace(b, i) == len(b)
}

// object reads the object at b[i] ('{'), recording known members.
func (lp *lineParser) object(b []byte, i, depth int) (int, bool) {
	base := len(lp.path)
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		key, j, ok := lp.str(b, i)
		if !ok {
			return j, false
		}
		i = jsonscan.SkipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		i = jsonscan.SkipSpace(b, i+1)
		if i >= len(b) {
			return i, false
		}
		lp.path = lp.path[:base]
		if base > 0 {
			lp.path = append(lp.path, '.')
		}
		lp.path = appendLower(lp.path, key)
		if i, ok = lp.value(b, i, depth); !ok {
			return i, false
		}
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			lp.path = lp.path[:base]
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (lp *lineParser) value(b []byte, i, depth int) (int, bool) {
	switch b[i] {
	case '"':
		v, j, ok := lp.str(b, i)
		if ok {
			lp.field(v, false)
		}
		return j, ok
	case '{':
		if depth < maxJSONDepth {
			return lp.object(b, i, depth+1)
		}
		return skipValue(b, i)
	case '[':
		j, ok := skipValue(b, i)
		if ok {
			lp.field(b[i:j], false) // e.g. zerolog's stack as an array of frames
		}
		return j, ok
	}
	j := i
	for j < len(b) && (isWordByte(b[j]) || b[j] == '-' || b[j] == '+' || b[j] == '.') {
		j++
	}
	if j == i {
		return i, false
	}
	if c := b[i]; c == '-' || '0' <= c && c <= '9' {
		lp.field(b[i:j], true)
	}
	return j, true
}

// str reads the JSON string at b[i] ('"').
func (lp *lineParser) str(b []byte, i int) ([]byte, int, bool) { return lp.quoted(b, i, false) }

// quoted reads the double-quoted string at b[i] and returns its text and the
// index after it. Without escapes the text is a slice of b; otherwise it is
// unescaped into lp.scratch: JSON's escapes, which are also the ones Go's
// strconv.Quote writes for logfmt. An unknown escape is kept as written with
// keepUnknown (logfmt: \x41 stays), else taken as the escaped character.
func (lp *lineParser) quoted(b []byte, i int, keepUnknown bool) ([]byte, int, bool) {
	i++
	start := i
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		i++
	}
	if i >= len(b) {
		return nil, i, false
	}
	if b[i] == '"' {
		return b[start:i], i + 1, true
	}
	out := len(lp.scratch)
	lp.scratch = append(lp.scratch, b[start:i]...)
	for i < len(b) {
		c := b[i]
		if c == '"' {
			return lp.scratch[out:], i + 1, true
		}
		if c != '\\' {
			lp.scratch = append(lp.scratch, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			return nil, i, false
		}
		i += 2
		switch e := b[i-1]; e {
		case 'n':
			lp.scratch = append(lp.scratch, '\n')
		case 't':
			lp.scratch = append(lp.scratch, '\t')
		case 'r':
			lp.scratch = append(lp.scratch, '\r')
		case 'b':
			lp.scratch = append(lp.scratch, '\b')
		case 'f':
			lp.scratch = append(lp.scratch, '\f')
		case 'u':
			r, n := decodeUnicodeEscape(b[i-2:])
			lp.scratch = utf8.AppendRune(lp.scratch, r)
			i += n - 2
		case '"', '\\', '/':
			lp.scratch = append(lp.scratch, e)
		default:
			if keepUnknown {
				lp.scratch = append(lp.scratch, '\\')
			}
			lp.scratch = append(lp.scratch, e)
		}
	}
	return nil, i, false
}

// decodeUnicodeEscape reads \uXXXX (and a following low surrogate) at the
// start of b and returns the rune and the bytes read; malformed input gives
// U+FFFD.
func decodeUnicodeEscape(b []byte) (rune, int) {
	r, ok := hex4(b)
	if !ok {
		return 0xfffd, 2
	}
	if r >= 0xd800 && r < 0xdc00 {
		if lo, ok := hex4(b[6:]); ok && len(b) >= 12 && b[6] == '\\' && lo >= 0xdc00 && lo < 0xe000 {
			return (r-0xd800)<<10 + (lo - 0xdc00) + 0x10000, 12
		}
		return 0xfffd, 6
	}
	if r >= 0xdc00 && r < 0xe000 {
		return 0xfffd, 6
	}
	return r, 6
}

// hex4 reads the four hex digits of \uXXXX at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipValue skips the JSON value at b[i] without recording it. Nesting is
// counted, not recursed into, so a deeply nested line cannot exhaust the stack.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			j, ok := skipString(b, i)
			if !ok {
				return j, false
			}
			i = j
			if depth == 0 {
				return i, true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth <= 0 {
				return i + 1, depth == 0
			}
		default:
			if depth == 0 {
				j := i
				for j < len(b) && (isWordByte(b[j]) || b[j] == '-' || b[j] == '+' || b[j] == '.') {
					j++
				}
				return j, j > i
			}
		}
		i++
	}
	return i, false
}

func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return i, false
}

func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
