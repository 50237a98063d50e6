package enrich

import "bytes"

// Reading the exception a record describes: error.type and error.message of
// a Python traceback (its last line), a Java or JavaScript stack (its first
// line), a Go panic (the panic line).

const pythonTraceback = "Traceback (most recent call last):"

// splitException reads an exception line such as "KeyError: 'cart_id'",
// "java.lang.IllegalStateException: boom", `Exception in thread "main"
// java.lang.Error: x`, "Caused by: x.Y: z" or "Uncaught TypeError: x". The
// type must be a (dotted) class name. With strict, it must also end like an
// exception class (Error, Exception, Throwable, Warning), which is what lets
// a line that merely starts with a word and a colon pass as a message.
func splitException(line []byte, strict bool) (typ, msg []byte, ok bool) {
	line = bytes.TrimSpace(line)
	if hasPrefix(line, "Exception in thread ") {
		// Exception in thread "main" java.lang.IllegalStateException: boom
		rest := line[len("Exception in thread "):]
		if len(rest) > 0 && rest[0] == '"' {
			if j := bytes.IndexByte(rest[1:], '"'); j >= 0 {
				line = bytes.TrimSpace(rest[j+2:])
			}
		}
	}
	for _, p := range [...]string{"Caused by: ", "Uncaught "} {
		if hasPrefix(line, p) {
			line = line[len(p):]
		}
	}
	if i := bytes.Index(line, []byte(": ")); i >= 0 {
		typ, msg = line[:i], line[i+2:]
	} else {
		typ = bytes.TrimSuffix(line, []byte(":"))
	}
	if !isClassName(typ) || strict && !hasExceptionSuffix(typ) {
		return nil, nil, false
	}
	return typ, msg, true
}

// isClassName reports whether b is a class name, possibly qualified:
// letters, digits, '_' and '$' in dot-separated segments that do not start
// with a digit.
func isClassName(b []byte) bool {
	if len(b) == 0 || len(b) > 256 {
		return false
	}
	segStart := true
	for _, c := range b {
		switch {
		case c == '.':
			if segStart {
				return false
			}
			segStart = true
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '$':
			segStart = false
		case '0' <= c && c <= '9':
			if segStart {
				return false
			}
		default:
			return false
		}
	}
	return !segStart
}

func hasExceptionSuffix(t []byte) bool {
	for _, s := range [...]string{"Error", "Exception", "Throwable", "Warning"} {
		if bytes.HasSuffix(t, []byte(s)) {
			return true
		}
	}
	return false
}

// goPanic reads a Go panic line: "panic: x", "fatal error: x", the runtime's
// report of a fatal signal ("SIGQUIT: quit", "SIGABRT: abort", which a
// goroutine dump follows), or net/http's "http: panic serving
// 10.0.0.1:5678: x" (after the standard logger's date).
func goPanic(line []byte) (typ, msg []byte, ok bool) {
	line = bytes.TrimSpace(line)
	switch {
	case hasPrefix(line, "panic: "):
		return []byte("panic"), line[len("panic: "):], true
	case hasPrefix(line, "fatal error: "):
		return []byte("fatal error"), line[len("fatal error: "):], true
	}
	if sig, rest, ok := goSignal(line); ok {
		return sig, rest, true
	}
	if i := bytes.Index(line, []byte("http: panic serving ")); i >= 0 {
		rest := line[i+len("http: panic serving "):]
		if j := bytes.Index(rest, []byte(": ")); j >= 0 {
			return []byte("panic"), rest[j+2:], true
		}
	}
	return nil, nil, false
}

// goSignal reads the line the Go runtime prints before the goroutine dump
// when a signal kills the process: "SIGQUIT: quit", "SIGABRT: abort",
// "SIGSEGV: segmentation violation" (in C code). Only the signals the
// runtime dies of with a dump count, so a message such as "SIGTERM: stopping"
// stays a message.
func goSignal(line []byte) (sig, msg []byte, ok bool) {
	i := bytes.Index(line, []byte(": "))
	if i < 0 || len(line) == i+2 {
		return nil, nil, false
	}
	switch string(line[:i]) {
	case "SIGQUIT", "SIGABRT", "SIGILL", "SIGTRAP", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSTKFLT", "SIGSYS":
	default:
		return nil, nil, false
	}
	for _, c := range line[i+2:] {
		if !('a' <= c && c <= 'z' || c == ' ' || c == '-') {
			return nil, nil, false // the runtime's names are lower-case words
		}
	}
	return line[:i], line[i+2:], true
}

// exceptionOf finds the exception of a stack trace given whole, as
// structured loggers put it in one field (exc_info, err.stack, stack_trace).
func exceptionOf(stack []byte) (typ, msg []byte) {
	s := bytes.TrimSpace(stack)
	first := firstLine(s)
	if hasPrefix(first, pythonTraceback) {
		// The exception raised last is on the last line that is not a frame.
		for rest := s; len(rest) > 0; {
			i := bytes.LastIndexByte(rest, '\n')
			line := rest[i+1:]
			rest = rest[:max(i, 0)]
			if isBlank(line) || isIndented(line) {
				continue
			}
			if t, m, ok := splitException(line, false); ok {
				return t, m
			}
			return nil, line
		}
		return nil, nil
	}
	if t, m, ok := goPanic(first); ok {
		return t, m
	}
	if t, m, ok := splitException(first, false); ok && (m != nil || hasExceptionSuffix(t)) {
		return t, m
	}
	return nil, nil
}
