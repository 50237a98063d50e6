package enrich

import "bytes"

// Backend records: what a group of lines says as a log record (level,
// message, exception, stack), whatever format it was written in.

// record is what a group says as a log record.
type record struct {
	level     level
	headline  []byte // a text record's lines before its stack trace, or a structured line's message
	logger    []byte
	levelText []byte
	errType   []byte
	errMsg    []byte
	stack     []byte
}

// describe reads the record g, whose header line parsed as p.
func describe(r *record, g *group, p *parsed) {
	*r = record{level: p.level, logger: p.logger, levelText: p.levelText,
		errType: p.errType, errMsg: p.errMessage, stack: p.stack}
	r.headline = p.message
	if p.format == formatText {
		r.headline = bytes.TrimSpace(g.beforeStack())
	}
	if st := g.stack(); st != nil {
		r.stack = trimTrailingBlankLines(st)
	}
	if exc := g.exception(); exc != nil {
		if t, m, ok := goPanic(exc); ok {
			r.errType, r.errMsg = t, m
		} else if t, m, ok := railsException(exc); ok {
			r.errType, r.errMsg = t, m
		} else if t, m, ok := splitException(exc, false); ok {
			r.errType, r.errMsg = t, m
		} else {
			r.errType, r.errMsg = nil, bytes.TrimSpace(exc)
		}
	} else if len(r.stack) > 0 && len(r.errType) == 0 {
		if t, m := exceptionOf(r.stack); t != nil || m != nil {
			r.errType = t
			if len(r.errMsg) == 0 {
				r.errMsg = m
			}
		}
	}
	if g.kind == traceRails && g.excAt >= 0 {
		r.level = levelError // "Completed 500" is logged at INFO, its exception with it
	}
	if r.level == levelUnknown {
		switch {
		case len(r.stack) > 0 || len(r.errType) > 0 || g.kind.isTrace():
			r.level = levelError
		case p.format != formatText && len(r.errMsg) > 0:
			r.level = levelError
		default:
			r.level = levelInfo
		}
	}
}

// appendRecordMessage appends the readable line of a backend record: a
// text record's lines before its stack trace and its exception line
// ("ERROR:app:Exception on /api/cart [GET]: KeyError: 'cart_id'"), or a
// structured line's message and its error ("checkout failed: TypeError: x").
func appendRecordMessage(dst []byte, g *group, p *parsed, r *record) []byte {
	if p.format == formatText {
		exc := bytes.TrimSpace(g.exception())
		switch {
		case len(r.headline) == 0 && len(exc) > 0:
			return append(dst, exc...) // the record is the trace itself
		case len(r.headline) == 0:
			return append(dst, bytes.TrimSpace(firstLine(g.text))...) // the rest of a split stack trace
		case len(exc) > 0 && g.excAt >= g.headerEnd:
			return append(append(append(dst, r.headline...), ": "...), exc...)
		}
		return append(dst, r.headline...)
	}
	dst = append(dst, bytes.TrimSpace(r.headline)...)
	if len(dst) == 0 {
		dst = append(dst, g.text...) // no message field: the line as written
	}
	if len(r.errMsg) > 0 && !bytes.Contains(dst, r.errMsg) {
		dst = append(dst, ": "...)
		dst = appendSummary(dst, r.errType, r.errMsg, nil)
	}
	return dst
}

// removeMarker removes the first "[openReplaySession.id=N]", the one that
// opens the message, and the space after it from msg, in place. Any other
// is text the backend logged, defused when the document is encoded.
func removeMarker(msg []byte, session uint64) []byte {
	var buf [48]byte
	m := appendMarker(buf[:0], session)
	i := bytes.Index(msg, m)
	if i < 0 {
		return msg
	}
	end := i + len(m)
	if end < len(msg) && msg[end] == ' ' {
		end++
	}
	return bytes.TrimSpace(append(msg[:i], msg[end:]...))
}

// traceHex picks the 32 hex digits of a trace id out of the forms loggers
// write it in, e.g. Google's "projects/p/traces/<id>"; other values are kept.
func traceHex(v []byte) []byte {
	for i := 0; i+32 <= len(v); i++ {
		j := i
		for j < len(v) && isHexByte(v[j]) {
			j++
		}
		if j-i == 32 {
			return v[i:j]
		}
		i = j
	}
	return v
}

func trimTrailingBlankLines(b []byte) []byte {
	for {
		i := bytes.LastIndexByte(b, '\n')
		if i < 0 || !isBlank(b[i+1:]) {
			return b
		}
		b = b[:i]
	}
}
