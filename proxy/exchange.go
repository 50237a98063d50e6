package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// exchange is one request on its way through the proxy. It is pooled and
// owned by one goroutine at a time: fasthttp's worker runs the handler and
// then writes the response (responseBody calls finish from there); for an
// upgrade the tunnel goroutine takes over after the handler returned. finish
// hands the access event to the Observer and puts the exchange back.
type exchange struct {
	p     *Proxy
	ctx   *fasthttp.RequestCtx
	ev    *AccessEvent
	start RequestStart
	t0    time.Time

	// The request, read once in begin. Slices point into ctx and are valid
	// while the handler runs.
	info       requestInfo
	trace      traceContext
	method     []byte
	uri        []byte // request target as sent upstream
	idempotent bool
	isHead     bool
	upgrade    bool
	preflight  bool
	body       requestBody
	head       []byte // scratch for the upstream request head
	scratch    []byte // scratch for X-Forwarded-For and CORS

	// The upstream that answered and its connection: cc from the pool, or
	// rawConn for upgrades; br reads it and resp holds the parsed answer.
	up            *upstream
	cc            any // *fasthttp.clientConn, see pooledConn
	rawConn       net.Conn
	br            *bufio.Reader
	resp          fasthttp.Response
	upWriteFailed bool
	upRefusal     reuseRefusal // what the response's head says against reusing cc

	// The response to the client.
	status     int
	respBody   responseBody
	local      []byte // proxy-made body or 101 head
	capture    bool   // tee the body into ev.ErrorBody
	coding     contentCoding
	bytesOut   int64
	tunnelIn   int64
	clientGone bool
	finished   bool
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func (p *Proxy) acquireExchange(ctx *fasthttp.RequestCtx) *exchange {
	x := exchangePool.Get().(*exchange)
	x.p, x.ctx, x.ev = p, ctx, AcquireEvent()
	x.body.reset(x)
	x.respBody.reset(x)
	x.method, x.uri = nil, nil
	x.idempotent, x.isHead, x.upgrade, x.preflight = false, false, false, false
	x.up, x.cc, x.rawConn, x.br, x.upWriteFailed, x.upRefusal = nil, nil, nil, nil, false, reuseOK
	x.status, x.capture, x.coding, x.bytesOut, x.tunnelIn = 0, false, codingIdentity, 0, 0
	x.clientGone, x.finished = false, false
	return x
}

func (x *exchange) release() {
	x.resp.Reset()
	x.p, x.ctx, x.ev = nil, nil, nil
	x.start.Method, x.start.Path, x.start.RequestID = nil, nil, nil
	x.info = requestInfo{}
	x.body.reset(nil)
	x.respBody.reset(nil)
	if cap(x.local) > 64<<10 {
		x.local = nil
	}
	exchangePool.Put(x)
}

// begin reads the request's headers once: framing, identity, session and
// the parts of the access event known up front, then tells the Observer.
func (x *exchange) begin() {
	ctx, p, ev := x.ctx, x.p, x.ev
	h := &ctx.Request.Header
	x.t0 = time.Now()
	x.info.scan(h.RawHeaders())
	x.method = h.Method()
	x.uri = originForm(h.RequestURI())
	path, query := splitTarget(x.uri)
	x.info.sess.rawQuery = query
	x.isHead = h.IsHead()
	x.idempotent = isIdempotent(x.method)
	x.upgrade = x.info.isUpgrade()
	preflight := h.IsOptions() && x.info.origin && x.info.acrMethod
	x.preflight = p.opts.CORSAddSessionHeader && preflight

	ev.Seq, ev.Start = p.seq.Add(1), x.t0
	ev.Method = append(ev.Method[:0], x.method...)
	ev.Path = append(ev.Path[:0], path...)
	ev.Query = p.redact.appendRedacted(ev.Query[:0], query)
	ev.UserAgent = append(ev.UserAgent[:0], x.info.userAgent...)
	ev.ClientIP = appendAddrIP(ev.ClientIP[:0], ctx.RemoteAddr())
	ev.RequestID = appendRequestID(ev.RequestID[:0], x.info.requestID)
	ev.ClientRequestID = validRequestID(x.info.requestID)
	x.trace.begin(x.info.traceparent, x.info.nTraceparent)
	ev.TraceID, ev.SpanID, ev.ClientTrace = x.trace.traceID, x.trace.spanID, x.trace.continued
	ev.Session, ev.Source = p.sessions.extract(&x.info.sess)

	x.start = RequestStart{
		Seq: ev.Seq, Start: ev.Start, Session: ev.Session, Source: ev.Source,
		Method: ev.Method, Path: ev.Path, RequestID: ev.RequestID,
		TraceID: ev.TraceID, SpanID: ev.SpanID, Preflight: preflight,
		ClientRequestID: ev.ClientRequestID, ClientTrace: ev.ClientTrace,
	}
	p.observer.RequestStarted(&x.start)
	x.start.Method, x.start.Path, x.start.RequestID = nil, nil, nil
}

// setupBody decides how the request body is framed upstream.
func (x *exchange) setupBody() {
	h := &x.ctx.Request.Header
	b := &x.body
	b.src = x.ctx.RequestBodyStream()
	switch {
	case x.info.nTE > 0:
		b.framed, b.length = true, -1
	case x.info.nCL > 0:
		b.framed, b.length = true, int64(h.ContentLength())
	default:
		b.src = nil
	}
	if b.length == 0 {
		b.src = nil
	}
}

// appendHead writes the request head sent to u: the client's fields in their
// order minus hop-by-hop ones, then the proxy's own.
func (x *exchange) appendHead(dst []byte, u *upstream) []byte {
	p := x.p
	dst = append(dst, x.method...)
	dst = append(dst, ' ')
	dst = append(dst, x.uri...)
	dst = append(dst, " HTTP/1.1\r\n"...)

	clientHost := x.ctx.Request.Header.Host()
	switch {
	case p.opts.UpstreamHost != "":
		dst = appendField(dst, "Host", p.upstreamHost)
	case len(clientHost) == 0: // HTTP/1.0 clients may send none
		dst = appendField(dst, "Host", u.addrB)
	default:
		dst = appendField(dst, "Host", clientHost)
	}

	xff := x.scratch[:0]
	sawProto, sawHost := false, false
	s := headerScanner{b: x.ctx.Request.Header.RawHeaders()}
	for s.next() {
		id := classifyHeader(s.key)
		switch id {
		case hdrHost, hdrContentLength, hdrExpect, hdrXRequestID, hdrTraceparent, hdrUpstreamSession:
			continue // replaced below; Expect was already answered by fasthttp
		case hdrTracestate:
			if !x.trace.continued {
				continue // belongs to a traceparent that was not continued
			}
		case hdrSessionID:
			if !p.sessions.configured[LookInHeader] {
				continue // an untrusted source: the backend must not print it as a marker
			}
		case hdrBaggage:
			if !p.sessions.configured[LookInBaggage] {
				// Only the session member goes: the rest is the
				// application's (OpenTelemetry baggage).
				n := len(dst)
				dst = append(dst, s.key...)
				dst = append(dst, ": "...)
				var kept bool
				if dst, kept = appendBaggageWithout(dst, s.value, baggageSessionKey); kept {
					dst = append(dst, "\r\n"...)
				} else {
					dst = dst[:n]
				}
				continue
			}
		case hdrXForwardedFor:
			if len(xff) > 0 {
				xff = append(xff, ", "...)
			}
			xff = append(xff, s.value...)
			continue
		case hdrXForwardedProto:
			sawProto = true
		case hdrXForwardedHost:
			sawHost = true
		}
		if isHopByHop(id) || x.info.connectionNames(s.key) {
			continue
		}
		dst = append(dst, s.key...)
		dst = append(dst, ": "...)
		dst = append(dst, s.value...)
		dst = append(dst, "\r\n"...)
	}
	x.scratch = xff

	dst = append(dst, "X-Forwarded-For: "...)
	if len(xff) > 0 {
		dst = append(dst, xff...)
		dst = append(dst, ", "...)
	}
	dst = append(dst, x.ev.ClientIP...)
	dst = append(dst, "\r\n"...)
	if !sawProto {
		dst = append(dst, "X-Forwarded-Proto: http\r\n"...)
	}
	if !sawHost && len(clientHost) > 0 {
		dst = appendField(dst, "X-Forwarded-Host", clientHost)
	}
	dst = appendField(dst, HeaderRequestID, x.ev.RequestID)
	dst = append(dst, "traceparent: "...)
	dst = x.trace.appendTraceparent(dst)
	dst = append(dst, "\r\n"...)
	if x.ev.Session != 0 {
		dst = append(dst, HeaderUpstreamSession+": "...)
		dst = strconv.AppendUint(dst, x.ev.Session, 10)
		dst = append(dst, "\r\n"...)
	}
	if x.upgrade {
		dst = append(dst, "Connection: Upgrade\r\n"...)
		dst = appendField(dst, "Upgrade", x.info.upgrade)
	}
	dst = x.body.appendFraming(dst)
	return append(dst, "\r\n"...)
}

func appendField(dst []byte, name string, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// respondUpstream passes the upstream's answer to the client: status, the
// end-to-end headers and the body as a stream.
func (x *exchange) respondUpstream() {
	resp, out := &x.resp, &x.ctx.Response
	x.status = resp.StatusCode()
	out.SetStatusCode(x.status)
	if msg := resp.Header.StatusMessage(); len(msg) > 0 {
		out.Header.SetStatusMessage(msg)
	}
	x.copyResponseHeaders()
	out.Header.SetBytesV(HeaderRequestID, x.ev.RequestID)

	if x.status >= 500 && x.p.opts.ErrorBodyBytes > 0 {
		x.capture = true
		x.coding = codingOf(resp.Header.ContentEncoding())
	}
	if resp.IsBodyStream() {
		x.respBody.src = resp.BodyStream()
	}
	size := resp.Header.ContentLength()
	if size < 0 {
		size = -1
	}
	out.SetBodyStream(&x.respBody, size)
}

// respondLocal answers the client with a short text/plain body made by the
// proxy; event is what AccessEvent.ProxyError says.
func (x *exchange) respondLocal(status int, event, body string, closeConn bool) {
	out := &x.ctx.Response
	x.status = status
	out.SetStatusCode(status)
	out.Header.SetContentType("text/plain; charset=utf-8")
	out.Header.SetBytesV(HeaderRequestID, x.ev.RequestID)
	if closeConn {
		x.ctx.SetConnectionClose()
	}
	x.local = append(x.local[:0], body...)
	x.local = append(x.local, "request id: "...)
	x.local = append(x.local, x.ev.RequestID...)
	x.local = append(x.local, '\n')
	x.ev.ProxyError = append(x.ev.ProxyError[:0], event...)
	x.respBody.local = x.local
	out.SetBodyStream(&x.respBody, len(x.local))
}

// respondClientBodyError answers a request whose body could not be read
// from the client.
func (x *exchange) respondClientBodyError() {
	err := x.body.err
	switch {
	case isTimeout(err):
		rejectedRequests[rejectBodyTimeout].Inc()
		x.respondLocal(fasthttp.StatusRequestTimeout, "client body read timeout",
			"408 Request Timeout: the request body did not arrive in time\n", true)
	case isConnectionLoss(err):
		x.clientGone = true
		x.respondLocal(fasthttp.StatusBadRequest, "client went away while sending the body",
			"400 Bad Request: the request body ended early\n", true)
	default:
		rejectedRequests[rejectFraming].Inc()
		x.respondLocal(fasthttp.StatusBadRequest, "refused request: malformed chunked body",
			"400 Bad Request: malformed chunked request body\n", true)
	}
}

// extendClientRead gives the client IdleTimeout for the next read of its
// body, but no more than what is left of its body deadline: the request's
// start plus ClientBodyTimeout, plus a second per ClientBodyMinRate bytes
// received. Without the body deadline a client sending a byte per
// IdleTimeout would hold its upstream connection forever.
func (x *exchange) extendClientRead() {
	o := &x.p.opts
	deadline := x.t0.Add(o.ClientBodyTimeout)
	if rate := o.ClientBodyMinRate; rate > 0 {
		n := x.body.n
		deadline = deadline.Add(time.Duration(n/rate)*time.Second + time.Duration(n%rate)*time.Second/time.Duration(rate))
	}
	if idle := time.Now().Add(o.IdleTimeout); idle.Before(deadline) {
		deadline = idle
	}
	_ = x.ctx.SetReadDeadline(deadline)
}

// extendClientWrite gives the client IdleTimeout to take the next write.
func (x *exchange) extendClientWrite() {
	_ = x.ctx.SetWriteDeadline(time.Now().Add(x.p.opts.IdleTimeout))
}

// tee keeps the first ErrorBodyBytes of a 5xx body in the event.
func (x *exchange) tee(p []byte) {
	if !x.capture {
		return
	}
	room := x.p.opts.ErrorBodyBytes - len(x.ev.ErrorBody)
	if room <= 0 {
		return
	}
	x.ev.ErrorBody = append(x.ev.ErrorBody, p[:min(room, len(p))]...)
}

// finish ends the request: writeErr is nil when the response reached the
// client. It runs exactly once per exchange.
func (x *exchange) finish(writeErr error) {
	if x.finished {
		return
	}
	x.finished = true
	p, ev := x.p, x.ev
	x.releaseUpstream(writeErr == nil)

	status := x.status
	switch {
	case x.respBody.readErr != nil:
		upstreamErrors[KindBodyAborted].Inc()
		ev.ProxyError = append(ev.ProxyError[:0], KindBodyAborted.event()...)
	case writeErr != nil || x.clientGone:
		status = StatusClientClosedRequest
		clientAborted.Inc()
		if len(ev.ProxyError) == 0 {
			ev.ProxyError = append(ev.ProxyError, "client went away"...)
		}
	}
	d := time.Since(x.t0)
	ev.Status, ev.Duration = status, d
	ev.BytesIn, ev.BytesOut = x.body.n+x.tunnelIn, x.bytesOut
	if x.up != nil {
		ev.Upstream = append(ev.Upstream[:0], x.up.addr...)
	}
	if x.capture {
		x.decodeErrorBody()
	}
	countRequest(status)
	requestDuration.Update(d.Seconds())
	requestsInFlight.Dec()
	p.inflight.Add(-1)

	x.ev = nil
	p.observer.RequestFinished(ev)
	x.release()
}

// StatusClientClosedRequest is the status recorded when the client went away
// before the whole response was written (nginx's 499).
const StatusClientClosedRequest = 499

// contentCoding is the Content-Encoding of a kept error body.
type contentCoding uint8

const (
	codingIdentity contentCoding = iota
	codingGzip
	codingDeflate
	codingOther
)

func codingOf(v []byte) contentCoding {
	switch {
	case len(v) == 0 || equalFoldLower(v, "identity"):
		return codingIdentity
	case equalFoldLower(v, "gzip") || equalFoldLower(v, "x-gzip"):
		return codingGzip
	case equalFoldLower(v, "deflate"):
		return codingDeflate
	}
	return codingOther
}

// decodeErrorBody turns a compressed kept error body into text: as much as
// the kept prefix decodes to, up to ErrorBodyBytes. Only 5xx responses get
// here, so the allocations do not touch the common path.
func (x *exchange) decodeErrorBody() {
	ev := x.ev
	if x.coding == codingIdentity || len(ev.ErrorBody) == 0 {
		return
	}
	var r io.Reader
	var err error
	switch x.coding {
	case codingGzip:
		r, err = gzip.NewReader(bytes.NewReader(ev.ErrorBody))
	case codingDeflate:
		r, err = zlib.NewReader(bytes.NewReader(ev.ErrorBody))
	default:
		ev.ErrorBody = append(ev.ErrorBody[:0], "(response body in a content coding replaylink does not decode)"...)
		return
	}
	var decoded []byte
	if err == nil {
		decoded, err = io.ReadAll(io.LimitReader(r, int64(x.p.opts.ErrorBodyBytes)))
	}
	if len(decoded) == 0 && err != nil {
		ev.ErrorBody = append(ev.ErrorBody[:0], "(compressed response body could not be decoded)"...)
		return
	}
	ev.ErrorBody = append(ev.ErrorBody[:0], decoded...)
}

// originForm turns an absolute-form target (http://host/path) into the
// origin form an upstream expects.
func originForm(uri []byte) []byte {
	if len(uri) > 0 && (uri[0] == '/' || uri[0] == '*') {
		return uri
	}
	i := bytes.Index(uri, []byte("://"))
	if i < 0 {
		return uri
	}
	rest := uri[i+3:]
	if j := bytes.IndexAny(rest, "/?"); j >= 0 {
		if rest[j] == '?' {
			return append([]byte{'/'}, rest[j:]...) // rare; allocation accepted
		}
		return rest[j:]
	}
	return []byte{'/'}
}

// splitTarget splits a request target into path and raw query.
func splitTarget(uri []byte) (path, query []byte) {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, nil
}

// isIdempotent reports the idempotent methods of RFC 9110 section 9.2.2.
func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// appendAddrIP appends the IP of a TCP address without allocating.
func appendAddrIP(dst []byte, a net.Addr) []byte {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return dst
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return dst
	}
	return ip.Unmap().AppendTo(dst)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
