package enrich

import (
	"bytes"
	"strconv"
	"time"
)

// The line parser reads one backend line: a JSON object (pino, winston,
// bunyan, zap, zerolog, slog, logrus, python-json-logger, structlog,
// logstash-logback-encoder, ECS loggers), logfmt (slog's and logrus' text
// handlers, go-kit), or plain text, whose level it detects from the common
// formats' prefixes (see textLevel). It allocates nothing once its scratch
// buffers have grown; it is owned by the worker goroutine.

type lineFormat uint8

const (
	formatText lineFormat = iota
	formatJSON
	formatLogfmt
)

// parsed is what the parser found in one line. Slices point into the line or
// into the parser's scratch buffers and stay valid until the next parse.
type parsed struct {
	format       lineFormat
	level        level
	levelText    []byte // the level as written, for log.level
	message      []byte // structured lines: the message field; text lines: the whole line
	logger       []byte
	timeRaw      []byte // structured lines: the time field as written
	timeNum      bool   // timeRaw is a number (epoch seconds, ms, us or ns)
	requestID    []byte
	traceID      []byte
	spanID       []byte
	errType      []byte
	errMessage   []byte
	stack        []byte
	fieldSession uint64 // a session id the line states in a field of its own (openReplaySession.id)
	msgMarker    uint64 // the session of the guide's marker opening the message (see ownmarker.go)
	msgRank      int    // which message key was seen: lower wins
	loggerRank   int
}

type lineParser struct {
	p       parsed
	scratch []byte // unescaped strings and ANSI-free text
	path    []byte // lowercase dotted path of the JSON member being read
}

// maxJSONDepth bounds how deep nested objects are read for known fields
// (err.stack, log.level, http.request.id); deeper members are skipped.
const maxJSONDepth = 3

func (lp *lineParser) parse(line []byte) *parsed {
	lp.reset()
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) >= 2 && trimmed[0] == '{' && trimmed[len(trimmed)-1] == '}' {
		if lp.parseJSON(trimmed) {
			lp.p.format = formatJSON
			lp.p.msgMarker = messageMarker(lp.p.message)
			return &lp.p
		}
		lp.reset()
	}
	if startsLogfmt(trimmed) {
		if lp.parseLogfmt(trimmed) {
			lp.p.format = formatLogfmt
			lp.p.msgMarker = messageMarker(lp.p.message)
			return &lp.p
		}
		lp.reset()
	}
	lp.parseText(line)
	return &lp.p
}

func (lp *lineParser) reset() {
	lp.p = parsed{}
	lp.scratch = lp.scratch[:0]
	lp.path = lp.path[:0]
}

// parseText detects the level and logger of a plain-text line. The message is
// the whole line: nothing the backend wrote is dropped.
func (lp *lineParser) parseText(line []byte) {
	clean := line
	if bytes.IndexByte(line, 0x1b) >= 0 {
		start := len(lp.scratch)
		lp.scratch = stripANSIInto(lp.scratch, line)
		clean = lp.scratch[start:]
	}
	lp.p.format = formatText
	lp.p.message = line
	lp.p.msgMarker = leadingMarker(clean)
	lp.p.level, lp.p.levelText = textLevel(clean)
	if lp.p.levelText != nil {
		lp.p.logger = textLogger(clean, lp.p.levelText)
	}
}

// textLogger reads the logger name that follows the level word in three
// common layouts: Python's basicConfig "ERROR:name:msg", Flask's "ERROR in
// name: msg", and logback's or log4j's "ERROR name - msg".
func textLogger(line, levelWord []byte) []byte {
	off := len(line) - len(levelWord)
	if i := bytes.Index(line, levelWord); i >= 0 {
		off = i
	}
	rest := line[off+len(levelWord):]
	switch {
	case len(rest) > 0 && rest[0] == ':':
		if j := bytes.IndexByte(rest[1:], ':'); j > 0 && bytes.IndexByte(rest[1:1+j], ' ') < 0 {
			return rest[1 : 1+j]
		}
	case hasPrefix(rest, " in "):
		rest = rest[4:]
		if j := bytes.Index(rest, []byte(": ")); j > 0 && bytes.IndexByte(rest[:j], ' ') < 0 {
			return rest[:j]
		}
	case len(rest) > 1 && rest[0] == ' ':
		rest = bytes.TrimLeft(rest, " ")
		if j := bytes.Index(rest, []byte(" - ")); j > 0 && bytes.IndexByte(rest[:j], ' ') < 0 {
			return rest[:j]
		}
	}
	return nil
}

// field records a structured value under the lowercase dotted key lp.path.
// num says the value was a JSON number.
func (lp *lineParser) field(v []byte, num bool) {
	p := &lp.p
	switch string(lp.path) {
	case "msg", "message", "@message":
		lp.setMessage(v, 1)
	case "event", "log", "text": // structlog's "event"; plain "log" and "text" keys of log drivers
		if !num {
			lp.setMessage(v, 2)
		}
	case "level", "lvl", "severity", "levelname", "level_name", "loglevel", "log_level", "log.level", "@level", "severity_text":
		if p.levelText != nil {
			return
		}
		if num {
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				p.level, p.levelText = levelNumber(n), v
			}
			return
		}
		if l := levelWord(bytes.TrimSpace(v)); l != levelUnknown {
			p.level, p.levelText = l, v
		}
	case "time", "timestamp", "ts", "@timestamp", "t", "datetime", "date", "time_local":
		if p.timeRaw == nil {
			p.timeRaw, p.timeNum = v, num
		}
	case "logger", "logger_name", "loggername", "log.logger", "logger.name":
		lp.setLogger(v, 1)
	case "name", "component", "module":
		lp.setLogger(v, 2)
	case "error", "err", "error.message", "err.message", "err.msg", "error_message", "exception.message", "errormessage":
		if p.errMessage == nil && len(v) > 0 {
			p.errMessage = v
		}
	case "error.type", "err.type", "err.name", "error.name", "error.kind", "error.class", "err.class",
		"exception.type", "exc_type", "error_type", "errortype":
		if p.errType == nil && !num && isClassName(v) {
			p.errType = v
		}
	case "stack", "stacktrace", "stack_trace", "error.stack", "err.stack", "error.stack_trace", "err.stack_trace",
		"error.stacktrace", "err.stacktrace", "exc_info", "exc_text", "exception", "traceback", "exception.stacktrace",
		"exception.stack_trace", "error.verbose":
		if p.stack == nil && len(v) > 0 && !bytes.Equal(v, []byte("null")) {
			p.stack = v
		}
	case "request_id", "requestid", "req_id", "reqid", "x_request_id", "x-request-id", "request.id", "http.request.id",
		"req.id", "correlation_id", "correlationid", "x_correlation_id":
		if p.requestID == nil && !num {
			p.requestID = v
		}
	case "trace_id", "traceid", "trace.id", "oteltraceid", "trace_id_hex", "dd.trace_id", "logging.googleapis.com/trace":
		if p.traceID == nil && !num {
			p.traceID = v
		}
	case "span_id", "spanid", "span.id", "otelspanid", "logging.googleapis.com/spanid":
		if p.spanID == nil && !num {
			p.spanID = v
		}
	case "openreplaysession.id", "openreplaysessionid", "openreplay_session_id", "openreplay.session.id":
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64); err == nil && n > 0 {
			p.fieldSession = n
		}
	}
}

func (lp *lineParser) setMessage(v []byte, rank int) {
	if lp.p.message == nil || rank < lp.p.msgRank {
		lp.p.message, lp.p.msgRank = v, rank
	}
}

func (lp *lineParser) setLogger(v []byte, rank int) {
	if len(v) > 0 && (lp.p.logger == nil || rank < lp.p.loggerRank) {
		lp.p.logger, lp.p.loggerRank = v, rank
	}
}

// startsLogfmt reports whether b starts like logfmt: a key, then '='.
func startsLogfmt(b []byte) bool {
	for i, c := range b {
		if c == '=' {
			return i > 0
		}
		if !isKeyByte(c) {
			return false
		}
	}
	return false
}

func isKeyByte(c byte) bool {
	return isWordByte(c) || c == '.' || c == '-' || c == '@' || c == '/'
}

// parseLogfmt reads key=value pairs (values bare or double-quoted with Go's
// escapes). It accepts the line when it has at least two pairs and one of
// them is a level, message or time key.
func (lp *lineParser) parseLogfmt(b []byte) bool {
	pairs, known := 0, false
	for i := 0; i < len(b); {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if i >= len(b) {
			break
		}
		k := i
		for i < len(b) && isKeyByte(b[i]) {
			i++
		}
		if i == k || i < len(b) && b[i] != '=' && b[i] != ' ' {
			return false
		}
		key := b[k:i]
		var v []byte
		if i < len(b) && b[i] == '=' {
			i++
			if i < len(b) && b[i] == '"' {
				var ok bool
				if v, i, ok = lp.quoted(b, i, true); !ok {
					return false
				}
			} else {
				s := i
				for i < len(b) && b[i] != ' ' {
					i++
				}
				v = b[s:i]
			}
		}
		pairs++
		lp.path = appendLower(lp.path[:0], key)
		switch string(lp.path) {
		case "level", "lvl", "msg", "message", "time", "ts", "t":
			known = true
		}
		lp.field(v, isNumber(v))
	}
	return pairs >= 2 && known
}

func isNumber(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for i, c := range v {
		if !('0' <= c && c <= '9' || c == '.' || i == 0 && c == '-') {
			return false
		}
	}
	return true
}

// structuredTime reads a structured line's time field: RFC 3339 with a zone,
// or a Unix epoch number in seconds, milliseconds, microseconds or
// nanoseconds (told apart by magnitude). Times without a zone are not used:
// their zone is unknown.
func structuredTime(raw []byte, num bool) (time.Time, bool) {
	if len(raw) == 0 {
		return time.Time{}, false
	}
	if num || isNumber(raw) {
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f <= 0 {
			return time.Time{}, false
		}
		switch {
		case f >= 1e17:
			return time.Unix(0, int64(f)), true
		case f >= 1e14:
			return time.UnixMicro(int64(f)), true
		case f >= 1e11:
			return time.UnixMilli(int64(f)), true
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), true
	}
	s := string(raw)
	for _, layout := range [...]string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
