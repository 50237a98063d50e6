package enrich

import (
	"bytes"
	"encoding/hex"
	"math/bits"
	"strconv"
	"time"

	"github.com/replaylink/replaylink/proxy"
)

// Access documents: one per proxied request, made from its AccessEvent.
//
// The fields a client sizes (the request line and headers, up to
// --max-header-bytes, 64 KiB) and the 5xx body excerpt are cut so that
// their escaped form in the document is at most the caps below, each cut
// field named in replaylink.truncated_fields: one request with a 30 KB path
// and a 30 KB User-Agent made a 93 KB document (the path twice, escaped).
// With them an access document stays under 32 KiB (docs/document-format.md;
// TestAccessDocumentIsBounded), plus a folded-in backend record, which the
// grouping bounds. The caps are far above real values, so that only hostile
// or broken requests are cut; url.path's and user_agent.original's are the
// index template's ignore_above.
const (
	maxMethodField    = 64
	maxMessagePath    = 1 << 10 // of the path, in message; "…" marks the cut
	maxPathField      = 4 << 10
	maxQueryField     = 4 << 10
	maxUserAgentField = 1 << 10
	maxBodyField      = 16 << 10 // --error-body-bytes is at most this too
)

// capped cuts v so that its escaped form is at most max bytes, and marks
// (and counts) the field when it did.
func (d *document) capped(v []byte, max int, stripANSI bool, field truncatedFields) []byte {
	v, cut := escapedPrefix(v, max, stripANSI)
	if cut {
		d.markCut(field)
	}
	return v
}

func (d *document) markCut(field truncatedFields) {
	if d.cut&field == 0 {
		truncatedFieldsTotal[bits.TrailingZeros8(uint8(field))].Inc()
	}
	d.cut |= field
}

// accessDoc fills a.doc with the access document of ev.
func (a *assembler) accessDoc(ev *proxy.AccessEvent) {
	d := &a.doc
	d.reset()
	d.time = ev.Start
	d.level = accessLevel(ev)
	d.dataset, d.tagAccess = datasetAccess, true
	if ev.Session != 0 {
		d.session, d.source, d.attribution = ev.Session, ev.Source.String(), attributionExact
		d.marked = a.marking.mark(ev.Session, d.level)
	}
	d.method = d.capped(ev.Method, maxMethodField, false, truncMethod)
	a.msg = appendAccessLine(a.msg[:0], d, ev)
	switch {
	case len(ev.ProxyError) > 0:
		a.msg = append(append(a.msg, ' '), ev.ProxyError...)
		d.errType, d.errMsg = proxyErrorType, ev.ProxyError
	case len(ev.ErrorBody) > 0:
		if s := bodySummary(ev.ErrorBody); len(s) > 0 {
			a.msg = append(append(a.msg, ' '), s...)
		}
	}
	d.message = a.msg
	d.requestID = ev.RequestID // valid ones are short, others replaced (proxy)
	d.path = d.capped(ev.Path, maxPathField, false, truncPath)
	d.query = d.capped(ev.Query, maxQueryField, false, truncQuery)
	d.userAgent = d.capped(ev.UserAgent, maxUserAgentField, false, truncUserAgent)
	d.clientIP, d.upstream = ev.ClientIP, ev.Upstream
	d.status, d.bytesIn, d.bytesOut = ev.Status, ev.BytesIn, ev.BytesOut
	d.duration, d.hasDuration = ev.Duration, true
	d.body = d.capped(ev.ErrorBody, maxBodyField, true, truncBody)
	if ev.TraceID != ([16]byte{}) {
		d.traceID = hex.AppendEncode(a.hexbuf[:0], ev.TraceID[:])
		if ev.SpanID != ([8]byte{}) {
			d.spanID = hex.AppendEncode(a.hexbuf[32:32], ev.SpanID[:])
		}
	}
	d.service, d.host = a.service, a.host
}

// proxyErrorType is error.type of a response the proxy made itself.
var proxyErrorType = []byte("ProxyError")

// accessLevel: error for 5xx (including the proxy's own 502 and 504),
// warning for 4xx (including 499, the client went away), else info.
func accessLevel(ev *proxy.AccessEvent) level {
	switch {
	case ev.Status >= 500, ev.Status == 0 && len(ev.ProxyError) > 0:
		return levelError
	case ev.Status >= 400:
		return levelWarning
	}
	return levelInfo
}

// appendAccessLine appends "GET /api/cart -> 500 (12.4 ms)" with d's
// (capped) method, and the path cut at maxMessagePath.
func appendAccessLine(dst []byte, d *document, ev *proxy.AccessEvent) []byte {
	if len(d.method) > 0 {
		dst = append(append(dst, d.method...), ' ')
	}
	path, cut := escapedPrefix(ev.Path, maxMessagePath, true)
	dst = append(dst, path...)
	if cut {
		d.markCut(truncMessage)
		dst = append(dst, "…"...)
	}
	dst = append(dst, " -> "...)
	dst = strconv.AppendInt(dst, int64(ev.Status), 10)
	dst = append(dst, " ("...)
	dst = appendDuration(dst, ev.Duration)
	return append(dst, ')')
}

// appendDuration appends d as "12.4 ms" below 10 s, "12.3 s" from there.
func appendDuration(dst []byte, d time.Duration) []byte {
	unit, name := time.Millisecond, " ms"
	if d >= 10*time.Second {
		unit, name = time.Second, " s"
	}
	tenths := (d + unit/20) / (unit / 10)
	dst = strconv.AppendInt(dst, int64(tenths/10), 10)
	dst = append(dst, '.', byte('0'+tenths%10))
	return append(dst, name...)
}

// maxSummary bounds the part of a response body or record quoted in message.
const maxSummary = 200

// bodySummary is the first line of a 5xx body for message, unless it is
// markup (an HTML error page says nothing in one line).
func bodySummary(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == '<' {
		return nil
	}
	return clip(bytes.TrimSpace(firstLine(b)), maxSummary)
}

// clip cuts b to at most n bytes, at a character boundary.
func clip(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && b[n]&0xc0 == 0x80 {
		n--
	}
	return b[:n]
}

// appendSummary appends "KeyError: 'cart_id'", or the headline when the
// record names no exception.
func appendSummary(dst, typ, msg, headline []byte) []byte {
	switch {
	case len(typ) > 0 && len(msg) > 0:
		return append(append(append(dst, typ...), ": "...), clip(msg, maxSummary)...)
	case len(typ) > 0:
		return append(dst, typ...)
	case len(msg) > 0:
		return append(dst, clip(msg, maxSummary)...)
	}
	return append(dst, clip(firstLine(headline), maxSummary)...)
}
