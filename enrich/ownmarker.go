package enrich

import (
	"bytes"
	"strconv"
)

// A backend that follows OpenReplay's guide writes the marker itself: its
// logging filter prepends "[openReplaySession.id=N] " to each record's
// message, so the marker opens the message, right after the prefix the log
// format puts before it: "ERROR:app:[openReplaySession.id=N] x" in Python's
// default format.
// Anywhere else, it is text the backend logged: often what a user typed
// ("user searched for [openReplaySession.id=999]"), which must not move the
// line into session 999. So a line's own marker is read only at the start of
// its message: at the start of a JSON or logfmt message field, or in plain
// text after one of the common log prefixes below. What is before it must
// look like a prefix (timestamps, brackets, a level, a logger name), not
// like words of a message.
//
// Even there it is only a claim: attribution (see Attributor.attribute)
// drops it when the request id, trace id or timing of the line say the line
// belongs elsewhere.

const markerOpen = "[openReplaySession.id="

// maxMarkerPrefix bounds the log prefix before a marker: Spring Boot's, with
// a padded logger name, is about 120 bytes.
const maxMarkerPrefix = 256

// messageMarker returns the session of the marker that opens msg (a
// structured line's message field), else 0.
func messageMarker(msg []byte) uint64 {
	return markerSession(bytes.TrimLeft(msg, " \t"))
}

// leadingMarker returns the session of the marker that opens the message
// of the plain-text line (without ANSI escapes), else 0.
func leadingMarker(line []byte) uint64 {
	i := bytes.Index(line[:min(len(line), maxMarkerPrefix+len(markerOpen))], []byte(markerOpen))
	if i < 0 {
		return 0
	}
	n := markerSession(line[i:])
	if n == 0 || !isLogPrefix(line[:i]) {
		return 0
	}
	return n
}

// markerSession reads "[openReplaySession.id=N]" at the start of b.
func markerSession(b []byte) uint64 {
	if !hasPrefix(b, markerOpen) {
		return 0
	}
	b = b[len(markerOpen):]
	j := 0
	for j < len(b) && j < 20 && '0' <= b[j] && b[j] <= '9' {
		j++
	}
	if j == 0 || j >= len(b) || b[j] != ']' {
		return 0
	}
	n, err := strconv.ParseUint(string(b[:j]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// isLogPrefix says whether p, the text before a marker on its line, is a
// log format's prefix: nothing, a timestamp, or what leads up to and
// follows a level word in the common layouts.
func isLogPrefix(p []byte) bool {
	p = bytes.TrimLeft(p, " \t")
	if len(p) == 0 {
		return true
	}
	start, end, klog := prefixLevel(p)
	if start < 0 {
		return isTimestamp(p) // Go's log package: "2024/05/01 10:00:00 "
	}
	if !prefixLike(p[:start]) {
		return false
	}
	rest := p[end:]
	if klog {
		// klog: "E0501 10:00:00.123456    1 main.go:12] "
		c := cursor{b: rest}
		return c.spaces() > 0 && c.run(isClockByte) > 0 && c.spaces() > 0 && c.run(isDigit) > 0 &&
			c.spaces() > 0 && c.name(']') > 0 && c.lit("]") && c.spaces() > 0 && c.end()
	}
	return afterLevel(rest)
}

// prefixLevel finds the first level word of p: an upper-case one ("ERROR",
// "WARNING"), a bracketed one ("[error]"), one followed by a tab (zap's
// console encoder), or klog's one-letter level.
func prefixLevel(p []byte) (start, end int, klog bool) {
	if len(p) >= 6 && (p[0] == 'I' || p[0] == 'W' || p[0] == 'E' || p[0] == 'F') && isDigits(p[1:5]) && p[5] == ' ' {
		return 0, 5, true
	}
	for i := 0; i < len(p); {
		if !isWordByte(p[i]) {
			i++
			continue
		}
		j := i
		for j < len(p) && isWordByte(p[j]) {
			j++
		}
		if w := p[i:j]; len(w) >= 3 && levelWord(w) != levelUnknown {
			switch {
			case i > 0 && j < len(p) && (p[i-1] == '[' && p[j] == ']' || p[i-1] == '<' && p[j] == '>'):
				return i - 1, j, false // "[ERROR]", "[error]", "<warn>": the bracket is the level's
			case isUpper(w),
				j < len(p) && p[j] == '\t',
				i == 0 && j < len(p) && p[j] == ':': // winston: "error: "
				return i, j, false
			}
		}
		i = j
	}
	return -1, -1, false
}

// prefixLike says whether what comes before a level word is made of a log
// prefix's parts: timestamps, process and thread ids, bracketed fields, a
// logger name between separators. Two plain words in a row are the words
// of a message that happens to contain a level word.
func prefixLike(b []byte) bool {
	plain := false // the previous field was a plain word
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == ' ' || c == '\t':
			i++
			continue
		case c == '[' || c == '<' || c == '(':
			j := bytes.IndexByte(b[i:], closing(c))
			if j < 0 {
				return false
			}
			i += j + 1
			plain = false
			continue
		}
		j := i
		letters := true
		for j < len(b) && b[j] != ' ' && b[j] != '\t' {
			if !isASCIILetter(b[j]) {
				letters = false
			}
			j++
		}
		if letters {
			if plain {
				return false
			}
			plain = true
		} else {
			plain = false
		}
		i = j
	}
	return true
}

// afterLevel says whether rest, what follows the level word up to the
// marker, is one of the common layouts' separators.
func afterLevel(rest []byte) bool {
	if len(rest) > 0 && (rest[0] == ']' || rest[0] == '>') {
		rest = rest[1:] // "[ERROR] ", "<warn> "
	}
	for layout := range afterLevelLayouts {
		c := cursor{b: rest}
		if c.layout(layout) && c.end() {
			return true
		}
	}
	return false
}

const afterLevelLayouts = 9

// layout reads the separators of layout n after a level word; the marker
// must follow right after them.
func (c *cursor) layout(n int) bool {
	switch n {
	case 0: // "ERROR [m]", "[ERROR] [m]"
		return c.spaces() > 0
	case 1: // "ERROR:[m]", "ERROR: [m]", uvicorn's "ERROR:    [m]"
		return c.lit(":") && c.optSpaces()
	case 2: // Python's default "ERROR:app:[m]"
		return c.lit(":") && c.name(':') > 0 && c.lit(":") && c.spaces() <= 1
	case 3: // Flask's default "ERROR in app: [m]"
		return c.lit(" in ") && c.name(':') > 0 && c.lit(": ")
	case 4: // "ERROR - [m]" (Python's "%(name)s - %(levelname)s - %(message)s")
		return c.spaces() > 0 && c.lit("- ") && c.optSpaces()
	case 5: // logback's and log4j's "ERROR c.e.Shop - [m]"
		return c.spaces() > 0 && c.name(0) > 0 && c.spaces() > 0 && c.lit("- ") && c.optSpaces()
	case 6: // Ruby's Logger: "ERROR -- : [m]", "ERROR -- app: [m]"
		return c.spaces() > 0 && c.lit("--") && c.spaces() > 0 && c.optName(':') && c.lit(": ")
	case 7: // zap's console encoder: "ERROR\tmain.go:12\t[m]", with a logger name before the caller
		if !c.lit("\t") {
			return false
		}
		for k := 0; k < 2 && !c.end(); k++ {
			if c.name(0) == 0 || !c.lit("\t") {
				return false
			}
		}
		return true
	case 8: // Spring Boot: "ERROR 1 --- [main] c.e.Shop   : [m]", with [app] before the thread since 3.2
		if c.spaces() == 0 || c.run(isDigit) == 0 || c.spaces() == 0 || !c.lit("---") || c.spaces() == 0 {
			return false
		}
		for k := 0; k < 2 && c.lit("["); k++ {
			if c.until(']') < 0 || !c.lit("]") {
				return false
			}
			c.spaces()
		}
		return c.name(0) > 0 && c.spaces() > 0 && c.lit(": ")
	}
	return false
}

// isTimestamp says whether p is only a date and time, as Go's log package
// and bracketed-time formats write them.
func isTimestamp(p []byte) bool {
	digit := false
	for _, c := range p {
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case bytes.IndexByte([]byte("-/:.,TZ+ []"), c) < 0:
			return false
		}
	}
	return digit
}

func closing(open byte) byte {
	switch open {
	case '[':
		return ']'
	case '<':
		return '>'
	}
	return ')'
}

func isDigit(c byte) bool     { return '0' <= c && c <= '9' }
func isClockByte(c byte) bool { return isDigit(c) || c == ':' || c == '.' }

// cursor reads a log prefix from left to right.
type cursor struct {
	b []byte
	i int
}

func (c *cursor) end() bool { return c.i == len(c.b) }

func (c *cursor) optSpaces() bool { c.spaces(); return true }

func (c *cursor) optName(stop byte) bool { c.name(stop); return true }

// spaces skips spaces and tabs and says how many.
func (c *cursor) spaces() int {
	n := 0
	for c.i < len(c.b) && (c.b[c.i] == ' ' || c.b[c.i] == '\t') {
		c.i++
		n++
	}
	return n
}

func (c *cursor) lit(s string) bool {
	if !hasPrefix(c.b[c.i:], s) {
		return false
	}
	c.i += len(s)
	return true
}

func (c *cursor) run(ok func(byte) bool) int {
	n := 0
	for c.i < len(c.b) && ok(c.b[c.i]) {
		c.i++
		n++
	}
	return n
}

// name skips a logger or file name: no spaces, tabs, or stop (0: none).
func (c *cursor) name(stop byte) int {
	n := 0
	for ; c.i < len(c.b); c.i++ {
		if b := c.b[c.i]; b == ' ' || b == '\t' || stop != 0 && b == stop {
			break
		}
		n++
	}
	return n
}

// until skips to the next b on the line and says how far, or -1.
func (c *cursor) until(b byte) int {
	j := bytes.IndexByte(c.b[c.i:], b)
	if j >= 0 {
		c.i += j
	}
	return j
}
