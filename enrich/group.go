package enrich

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/capture/hooks"
)

// The grouper joins the lines of one multi-line record into a group: a Python
// traceback (with Flask's "Exception on /x [GET]" header and chained
// exceptions), a Java stack trace ("at ...", "Caused by:", "... N more"), a
// Go panic and its goroutine dump, a Node stack or crash report. Lines are
// grouped per (stream, origin, hook mark), the order in which capture
// delivers them. A
// group ends when a line arrives that cannot continue it, or when no line
// came for the idle time (flush, driven by the caller's clock so tests are
// deterministic). JSON lines are records of their own and never grouped.
//
// The grouper and its groups are owned by one goroutine (the enricher's
// worker). A group handed to emit is reused afterwards: emit must copy what
// it keeps.

const (
	maxGroupLines = 2000
	maxGroupBytes = 256 << 10
	// maxOpenGroups bounds the streams with a record in progress (ingest
	// origins are remote addresses); past it, lines are not grouped.
	maxOpenGroups = 1024
)

// groupKey is what lines must share to be one record: the stream, and the
// request a runtime hook marked them with (zero: unmarked). Two requests'
// tracebacks interleaved on one stream are two records.
type groupKey struct {
	stream capture.Stream
	origin string
	hook   hooks.Mark
}

// traceKind says what kind of multi-line record a group is, which decides
// the lines that may continue it.
type traceKind uint8

const (
	traceNone      traceKind = iota // a line, maybe the header of a trace to come
	tracePython                     // frames of "Traceback (most recent call last):"
	tracePythonEnd                  // after a traceback's exception line: chains may follow
	traceFrames                     // Java or JavaScript "at ..." frames
	traceGoPanic                    // "panic: ..." before its goroutine dump
	traceGoStack                    // a goroutine dump
	traceNodeCrash                  // Node's report of an uncaught exception
	tracePyWarning                  // Python's warnings: "file:line: Category: msg", then the source line
	traceRails                      // Rails' "Completed 500", blank lines, the exception, a blank, the backtrace
)

// isTrace reports whether a group of this kind is a stack trace.
func (k traceKind) isTrace() bool { return k != traceNone && k != tracePyWarning }

type group struct {
	key       groupKey
	first     time.Time // when the first line was read
	last      time.Time // when the last line was read
	text      []byte    // the lines, joined by '\n'
	lines     int
	headerEnd int // end of the first line in text
	stackAt   int // where the stack trace starts in text; -1: none
	excAt     int // start of the exception line in text; -1: none
	excEnd    int
	kind      traceKind
	json      bool // one JSON line
	truncated bool // capture cut a line of this group
	continued bool // continues a record that was too long for one group
}

func (g *group) header() []byte { return g.text[:g.headerEnd] }

// beforeStack is the record without its stack trace: the header and any
// lines that continue it.
func (g *group) beforeStack() []byte {
	if g.stackAt < 0 {
		return g.text
	}
	return g.text[:g.stackAt]
}

func (g *group) stack() []byte {
	if g.stackAt < 0 {
		return nil
	}
	return g.text[g.stackAt:]
}

func (g *group) exception() []byte {
	if g.excAt < 0 {
		return nil
	}
	return g.text[g.excAt:g.excEnd]
}

type grouper struct {
	idle time.Duration
	open map[groupKey]*group
	free []*group
	due  []*group // scratch for flush
}

func newGrouper(idle time.Duration) *grouper {
	return &grouper{idle: idle, open: make(map[groupKey]*group)}
}

// add takes one line. Groups it completes are passed to emit, in order.
func (gr *grouper) add(l *capture.Line, emit func(*group)) {
	text := bytes.TrimRight(l.Text, "\r\n")
	key := groupKey{l.Stream, l.Origin, l.Hook}
	if g := gr.open[key]; g != nil {
		kind, ok := g.next(text)
		if ok && g.lines < maxGroupLines && len(g.text)+1+len(text) <= maxGroupBytes {
			g.append(l, text, kind)
			return
		}
		delete(gr.open, key)
		emit(g)
		if ok { // the record goes on, but the group is full: continue it in a new one
			ng := gr.get()
			ng.start(key, l, text)
			ng.kind, ng.continued, ng.stackAt = kind, true, 0
			gr.release(g)
			gr.open[key] = ng
			return
		}
		gr.release(g)
	}
	if isBlank(text) {
		return // a blank line that continues nothing carries nothing
	}
	g := gr.get()
	g.start(key, l, text)
	if g.json || len(gr.open) >= maxOpenGroups {
		emit(g)
		gr.release(g)
		return
	}
	gr.open[key] = g
}

// flush emits the groups that received no line for the idle time before now.
func (gr *grouper) flush(now time.Time, emit func(*group)) {
	gr.flushIf(emit, func(g *group) bool { return now.Sub(g.last) >= gr.idle })
}

// flushAll emits every open group (on shutdown).
func (gr *grouper) flushAll(emit func(*group)) {
	gr.flushIf(emit, func(*group) bool { return true })
}

// flushIf emits the open groups that pass due, oldest first, so that the
// order is the same on every run.
func (gr *grouper) flushIf(emit func(*group), due func(*group) bool) {
	gr.due = gr.due[:0]
	for key, g := range gr.open {
		if due(g) {
			gr.due = append(gr.due, g)
			delete(gr.open, key)
		}
	}
	slices.SortFunc(gr.due, func(a, b *group) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		if a.key.stream != b.key.stream {
			return int(a.key.stream) - int(b.key.stream)
		}
		return strings.Compare(a.key.origin, b.key.origin)
	})
	for _, g := range gr.due {
		emit(g)
		gr.release(g)
	}
	clear(gr.due)
}

func (gr *grouper) get() *group {
	if n := len(gr.free); n > 0 {
		g := gr.free[n-1]
		gr.free = gr.free[:n-1]
		return g
	}
	return new(group)
}

func (gr *grouper) release(g *group) {
	if cap(g.text) > maxGroupBytes+(64<<10) {
		return // leave a rare giant buffer to the garbage collector
	}
	*g = group{text: g.text[:0]}
	gr.free = append(gr.free, g)
}

// start makes g a group of its first line.
func (g *group) start(key groupKey, l *capture.Line, text []byte) {
	*g = group{key: key, first: l.Time, last: l.Time, text: append(g.text[:0], text...),
		lines: 1, headerEnd: len(text), stackAt: -1, excAt: -1, truncated: l.Truncated}
	switch {
	case isJSONLine(text):
		g.json = true
	case hasPrefix(text, pythonTraceback):
		g.kind, g.stackAt = tracePython, 0
	case hasPrefix(text, "panic: ") || hasPrefix(text, "fatal error: ") || isGoSignal(text):
		g.kind, g.stackAt = traceGoPanic, 0
		g.setException(0, len(text))
	case isGoroutineHeader(text):
		g.kind, g.stackAt = traceGoStack, 0
	case isNodeCrashHeader(text):
		g.kind, g.stackAt = traceNodeCrash, 0
	case isPythonWarning(text):
		g.kind = tracePyWarning
	case hasPrefix(text, "Exception in thread "):
		g.kind, g.stackAt = traceFrames, 0
		g.setException(0, len(text))
	case railsErrorStart(text):
		g.kind = traceRails
	default:
		if _, _, ok := goPanic(text); ok { // net/http: "http: panic serving addr: x"
			g.kind = traceGoPanic
			g.setException(0, len(text))
		} else if _, _, ok := splitException(text, true); ok {
			g.setException(0, len(text))
		}
	}
}

func (g *group) append(l *capture.Line, text []byte, kind traceKind) {
	at := len(g.text) + 1
	g.text = append(append(g.text, '\n'), text...)
	g.lines++
	g.last = l.Time
	g.truncated = g.truncated || l.Truncated
	prev := g.kind
	g.kind = kind
	switch {
	case prev == tracePython && kind == tracePythonEnd:
		g.setException(at, len(g.text)) // the last one of a chain wins: it is what was raised
	case prev == traceNone && kind != traceNone:
		if g.stackAt < 0 {
			g.stackAt = at
			if g.excAt == 0 {
				g.stackAt = 0 // the header is the exception line ("TypeError: x" then frames)
			}
		}
		if g.excAt < 0 && kind == traceFrames {
			if _, _, ok := splitException(text, false); ok && !isAtFrame(text) {
				g.setException(at, len(g.text)) // logback: the message line, then the exception line
			}
		}
	case prev == traceGoPanic && kind == traceGoStack && g.stackAt < 0:
		g.stackAt = at
	case kind == traceRails:
		// The exception line starts the stack, as in a Java trace: the
		// lines before it (the "Completed 500" line) are the headline.
		rest := railsMessage(text)
		if _, _, ok := railsException(rest); ok && g.excAt < 0 {
			g.setException(at+len(text)-len(rest), len(g.text))
			if g.stackAt < 0 {
				g.stackAt = at
			}
		} else if g.stackAt < 0 && isRubyFrame(rest) {
			g.stackAt = at
		}
	case prev == traceNodeCrash && g.excAt < 0:
		if _, _, ok := splitException(text, true); ok {
			g.setException(at, len(g.text))
		}
	}
}

func (g *group) setException(from, to int) { g.excAt, g.excEnd = from, to }

// next says whether text continues g, and the kind g becomes with it.
func (g *group) next(text []byte) (traceKind, bool) {
	if g.json {
		return 0, false
	}
	blank := isBlank(text)
	indented := isIndented(text)
	switch g.kind {
	case traceNone:
		switch {
		case hasPrefix(text, pythonTraceback):
			return tracePython, true
		case isGoroutineHeader(text):
			return traceGoStack, true
		case isAtFrame(text):
			return traceFrames, true
		case g.lines == 1 && !indented && !blank:
			// logback and log4j print the exception line unindented after the message
			if _, _, ok := splitException(text, true); ok && bytes.IndexByte(firstWord(text), '.') > 0 {
				return traceFrames, true
			}
		case indented:
			return traceNone, true // an indented continuation of a multi-line message
		}
	case tracePython:
		if indented || blank {
			return tracePython, true
		}
		return tracePythonEnd, true // the exception line
	case tracePythonEnd:
		switch {
		case blank, indented,
			hasPrefix(text, "During handling of the above exception"),
			hasPrefix(text, "The above exception was the direct cause"):
			return tracePythonEnd, true
		case hasPrefix(text, pythonTraceback):
			return tracePython, true
		}
	case traceFrames:
		if indented || isAtFrame(text) || hasPrefix(text, "Caused by: ") || hasPrefix(text, "Wrapped by: ") {
			return traceFrames, true
		}
	case traceGoPanic:
		switch {
		case isGoroutineHeader(text):
			return traceGoStack, true
		case blank, indented, hasPrefix(text, "[signal "), hasPrefix(text, "panic: "),
			hasPrefix(text, "PC=0x"): // after "SIGQUIT: quit": where the signal struck
			return traceGoPanic, true
		}
	case traceGoStack:
		if blank || indented || isGoroutineHeader(text) || hasPrefix(text, "created by ") ||
			isGoFuncLine(text) || hasPrefix(text, "exit status ") || hasPrefix(text, "...") ||
			isGoRegister(text) {
			return traceGoStack, true
		}
	case tracePyWarning:
		if indented && g.lines == 1 {
			return tracePyWarning, true
		}
	case traceRails:
		rest := railsMessage(text)
		_, _, exc := railsException(rest)
		switch {
		case isBlank(rest) || isIndented(rest) || isRubyFrame(rest),
			exc && g.excAt < 0:
			return traceRails, true
		}
	case traceNodeCrash:
		if blank || indented || hasPrefix(text, "Node.js v") || hasPrefix(text, "Thrown at:") ||
			hasPrefix(text, "Emitted 'error' event") {
			return traceNodeCrash, true
		}
		if _, _, ok := splitException(text, true); ok {
			return traceNodeCrash, true
		}
	}
	return g.kind, false
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// isIndented: a tab or two spaces, as frames are printed. One space is not
// enough: werkzeug's " * Running on ..." lines are records of their own.
func isIndented(b []byte) bool {
	return len(b) > 0 && b[0] == '\t' || hasPrefix(b, "  ")
}

func isAtFrame(b []byte) bool { return hasPrefix(bytes.TrimLeft(b, " \t"), "at ") }

func isJSONLine(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}

// isGoroutineHeader: "goroutine 1 [running]:", or as a signal's dump prints
// it since Go 1.23, "goroutine 1 gp=0xc000002380 m=nil [IO wait]:".
func isGoroutineHeader(b []byte) bool {
	if !hasPrefix(b, "goroutine ") || !bytes.HasSuffix(b, []byte("]:")) {
		return false
	}
	rest := b[len("goroutine "):]
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	return i > 0 && (hasPrefix(rest[i:], " [") || hasPrefix(rest[i:], " gp=0x") && bytes.Contains(rest[i:], []byte(" [")))
}

// isGoRegister: a line of the registers a signal's dump ends with, "rax    0xca".
func isGoRegister(b []byte) bool {
	i := 0
	for i < len(b) && i < 7 && ('a' <= b[i] && b[i] <= 'z' || i > 0 && '0' <= b[i] && b[i] <= '9') {
		i++
	}
	if i < 2 || i == len(b) || b[i] != ' ' {
		return false
	}
	v := bytes.TrimLeft(b[i:], " ")
	if !hasPrefix(v, "0x") || len(v) == 2 {
		return false
	}
	for _, c := range v[2:] {
		if !isHexByte(c) {
			return false
		}
	}
	return true
}

func isGoSignal(b []byte) bool { _, _, ok := goSignal(b); return ok }

// isGoFuncLine: a frame's function line, e.g. "main.handler(...)" or
// "net/http.(*conn).serve(0xc000120000, {0x6a2f38, 0xc0001})".
func isGoFuncLine(b []byte) bool {
	i := bytes.IndexByte(b, '(')
	return i > 0 && bytes.HasSuffix(b, []byte(")")) && bytes.IndexByte(b[:i], ' ') < 0
}

// isNodeCrashHeader: "/app/server.js:10", the first line Node prints for an
// uncaught exception.
func isNodeCrashHeader(b []byte) bool {
	i := bytes.LastIndexByte(b, ':')
	if i <= 0 || !isDigits(b[i+1:]) || bytes.IndexByte(b, ' ') >= 0 {
		return false
	}
	for _, ext := range [...]string{".js", ".mjs", ".cjs", ".ts", ".jsx", ".tsx"} {
		if bytes.HasSuffix(b[:i], []byte(ext)) {
			return true
		}
	}
	return false
}

// isPythonWarning: "/app/app.py:12: DeprecationWarning: x", as the warnings
// module prints it, followed by one indented source line.
func isPythonWarning(b []byte) bool {
	i := bytes.Index(b, []byte(".py:"))
	if i < 0 {
		return false
	}
	rest := b[i+len(".py:"):]
	j := bytes.Index(rest, []byte(": "))
	if j <= 0 || !isDigits(rest[:j]) {
		return false
	}
	t, _, ok := splitException(rest[j+2:], true)
	return ok && bytes.HasSuffix(t, []byte("Warning"))
}

func firstWord(b []byte) []byte {
	if i := bytes.IndexAny(b, " :"); i >= 0 {
		return b[:i]
	}
	return b
}

// Rails logs a failing request's exception as one message of several lines
// (ActionDispatch::DebugExceptions), after the "Completed 500" line of the
// request and with blank lines in between; in production each line after
// the first carries the request's tags:
//
//	I, [2024-05-01T10:00:00.1 #1]  INFO -- : [8f5e] Completed 500 Internal Server Error in 3ms
//	F, [2024-05-01T10:00:00.1 #1] FATAL -- : [8f5e]
//	[8f5e] NoMethodError (undefined method `total' for nil):
//	[8f5e]
//	[8f5e] app/controllers/carts_controller.rb:5:in `show'

// railsErrorStart says whether text opens such a record: a "Completed 5xx"
// line, or a FATAL or ERROR line with an empty message.
func railsErrorStart(text []byte) bool {
	rest := railsMessage(text)
	if hasPrefix(rest, "Completed 5") {
		return true
	}
	return len(rest) < len(text) && isBlank(rest) && (bytes.Contains(text, []byte("FATAL -- ")) || bytes.Contains(text, []byte("ERROR -- ")))
}

// railsMessage returns text without Ruby's Logger prefix ("F, [time #pid]
// FATAL -- : ") and the tags after it ("[request id] ").
func railsMessage(text []byte) []byte {
	if len(text) > 3 && text[1] == ',' && text[2] == ' ' && text[3] == '[' {
		if i := bytes.Index(text, []byte(" -- ")); i > 0 {
			if j := bytes.Index(text[i:], []byte(": ")); j >= 0 {
				text = text[i+j+2:]
			} else if bytes.HasSuffix(text, []byte(":")) {
				return nil
			}
		}
	}
	for k := 0; k < 4 && len(text) > 0 && text[0] == '['; k++ {
		j := bytes.IndexByte(text, ']')
		if j < 0 {
			break
		}
		text = bytes.TrimPrefix(text[j+1:], []byte(" "))
	}
	return text
}

// railsException reads Rails' exception line: "NoMethodError (undefined
// method `total' for nil):", "ActiveRecord::RecordNotFound (Couldn't find
// Cart):".
func railsException(b []byte) (typ, msg []byte, ok bool) {
	b = bytes.TrimSpace(b)
	i := bytes.Index(b, []byte(" ("))
	if i <= 0 || !bytes.HasSuffix(b, []byte("):")) {
		return nil, nil, false
	}
	for _, part := range bytes.Split(b[:i], []byte("::")) {
		if !isClassName(part) || bytes.IndexByte(part, '.') >= 0 {
			return nil, nil, false
		}
	}
	return b[:i], b[i+2 : len(b)-2], true
}

// isRubyFrame: "app/controllers/carts_controller.rb:5:in `show'".
func isRubyFrame(b []byte) bool {
	b = bytes.TrimSpace(b)
	i := bytes.Index(b, []byte(".rb:"))
	return i > 0 && bytes.Contains(b[i:], []byte(":in "))
}
