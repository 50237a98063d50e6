// Package proxy is replaylink's reverse proxy: a fasthttp server in front of
// one or more HTTP backends that finds the OpenReplay session of every
// request, forwards it unchanged apart from hop-by-hop fields and a few
// added headers (X-Forwarded-*, X-Request-ID, traceparent,
// X-OpenReplay-Session-Id), streams bodies both ways and reports each request
// to an Observer as an AccessEvent.
//
// Files by concern: proxy.go (server, lifecycle, handler), exchange.go (one
// request), headers.go (header scanning and hop-by-hop rules), session.go and
// token.go (session sources), identity.go (request id, traceparent),
// transport.go (upstream connections), reuse.go (when one may carry the
// next request), upstream.go (health, selection), clientlimit.go
// (connections per client address), stream.go (bodies), upgrade.go
// (WebSocket), cors.go, redact.go, errors.go, metrics.go.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Proxy is a running reverse proxy. Create it with New.
type Proxy struct {
	opts         Options
	log          zerolog.Logger
	observer     Observer
	sessions     *sessionExtractor
	redact       *queryRedactor
	upstreamHost []byte
	bal          balancer
	dialer       dialer
	srv          *fasthttp.Server
	clients      connSet // open client connections, for a forced shutdown

	seq      atomic.Uint64
	inflight atomic.Int64
	closing  atomic.Bool
}

// New checks opts (see Options.Validate) and builds a Proxy. It does not
// listen yet: call Serve or ListenAndServe.
func New(opts Options) (*Proxy, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sessions, err := newSessionExtractor(opts.Sessions)
	if err != nil {
		return nil, err
	}
	redact, err := newQueryRedactor(opts.RedactQueryParams)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		opts:         opts,
		log:          opts.Logger,
		observer:     opts.Observer,
		sessions:     sessions,
		redact:       redact,
		upstreamHost: []byte(opts.UpstreamHost),
	}
	if p.observer == nil {
		p.observer = discardObserver{}
	}
	p.dialer.Timeout = opts.ConnectTimeout
	p.dialer.KeepAlive = 30 * time.Second
	for _, raw := range opts.Upstreams {
		addr, isTLS, _ := parseUpstreamURL(raw) // checked by Validate
		u := &upstream{
			addr:     addr,
			addrB:    []byte(addr),
			maxFails: int32(opts.MaxFails),
			cooldown: opts.FailCooldown,
			healthy:  upstreamHealthGauge(addr),
			log:      &p.log,
		}
		u.healthy.Set(1)
		u.hc = &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         isTLS,
			DialTimeout:                   p.dialer.dial,
			MaxConns:                      opts.MaxConnsPerUpstream,
			MaxConnWaitTimeout:            opts.ConnectTimeout,
			MaxIdleConnDuration:           opts.IdleTimeout,
			ReadBufferSize:                opts.MaxHeaderBytes,
			WriteBufferSize:               16 << 10,
			ConnPoolStrategy:              fasthttp.LIFO, // the freshest connection is the least likely to be stale
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
			SecureErrorLogMessage:         true,
		}
		if isTLS {
			host, _, _ := net.SplitHostPort(addr)
			u.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
			u.hc.TLSConfig = u.tls
		}
		p.bal.ups = append(p.bal.ups, u)
	}
	p.srv = &fasthttp.Server{
		Handler:                       p.serveHTTP,
		ErrorHandler:                  p.serveError,
		ConnState:                     p.connState,
		Logger:                        fasthttpLogger{&p.log},
		ReadBufferSize:                opts.MaxHeaderBytes,
		WriteBufferSize:               16 << 10,
		ReadTimeout:                   opts.ClientHeaderTimeout, // re-armed per body read, see requestBody
		IdleTimeout:                   opts.IdleTimeout,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		CloseOnShutdown:               true,
		SecureErrorLogMessage:         true,
	}
	return p, nil
}

// Serve accepts connections on ln until Shutdown; it then returns nil.
func (p *Proxy) Serve(ln net.Listener) error {
	if p.closing.Load() {
		_ = ln.Close()
		return errors.New("proxy: Serve called after Shutdown")
	}
	p.log.Info().Str("listen", ln.Addr().String()).Int("upstreams", len(p.bal.ups)).Msg("proxy listening")
	return p.srv.Serve(newClientLimitListener(ln, p.opts.MaxConnsPerClient, &p.log))
}

// ListenAndServe listens on Options.Listen and serves until Shutdown.
func (p *Proxy) ListenAndServe() error {
	ln, err := net.Listen("tcp", p.opts.Listen)
	if err != nil {
		return err
	}
	return p.Serve(ln)
}

// Shutdown stops accepting connections, closes idle ones and waits for the
// requests in flight (including WebSocket tunnels) until ctx is done. If the
// grace period runs out, it closes every remaining client and upstream
// connection, waits up to a second for their access events and returns
// ctx.Err(). Either way every request has reached the Observer when it
// returns, unless an Observer call itself hangs.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	err := p.srv.ShutdownWithContext(ctx)
	if err == nil {
		err = p.waitIdle(ctx)
	}
	if err != nil {
		p.log.Warn().Int64("in_flight", p.inflight.Load()).Msg("grace period over; closing remaining connections")
		p.clients.closeAll()
		p.dialer.conns.closeAll()
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.waitIdle(wctx)
		cancel()
	}
	for _, u := range p.bal.ups {
		u.hc.CloseIdleConnections()
	}
	return err
}

func (p *Proxy) waitIdle(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for p.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// readyFresh is how recent a response from an upstream must be for Ready to
// trust it without dialing.
const readyFresh = 5 * time.Second

// Ready reports whether some upstream can take requests: it is outside its
// cool-down and has answered recently or accepts a connection now. It is
// false once Shutdown has begun, so load balancers stop sending traffic.
func (p *Proxy) Ready() bool {
	if p.closing.Load() {
		return false
	}
	now := time.Now().UnixNano()
	for _, u := range p.bal.ups {
		if u.usable(now) && now-u.lastOK.Load() < int64(readyFresh) {
			return true
		}
	}
	timeout := min(p.opts.ConnectTimeout, time.Second)
	for _, u := range p.bal.ups {
		if u.probe(timeout) {
			return true
		}
	}
	return false
}

// serveHTTP is the fasthttp handler. It ends by giving fasthttp a response
// body (or a hijack) that finishes the exchange once written.
func (p *Proxy) serveHTTP(ctx *fasthttp.RequestCtx) {
	p.inflight.Add(1)
	requestsInFlight.Inc()
	x := p.acquireExchange(ctx)
	defer func() {
		if r := recover(); r != nil {
			p.handlerPanicked(ctx, x, r)
		}
	}()
	x.begin()
	if problem := x.info.framingProblem(); problem != "" {
		rejectedRequests[rejectFraming].Inc()
		x.respondLocal(fasthttp.StatusBadRequest, "refused request: "+problem,
			"400 Bad Request: ambiguous request framing\n", true)
		return
	}
	if ctx.IsConnect() {
		x.respondLocal(fasthttp.StatusMethodNotAllowed, "refused request: CONNECT",
			"405 Method Not Allowed: replaylink is a reverse proxy, not a forward proxy\n", true)
		return
	}
	x.setupBody()
	if err := x.body.readAhead(); err != nil {
		x.respondClientBodyError()
		return
	}
	switch err := p.roundTrip(x); {
	case err == nil:
		if x.upgrade && x.resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
			x.hijack()
			return
		}
		x.respondUpstream()
	case err == errClientBody:
		x.respondClientBodyError()
	default:
		var ue *UpstreamError
		kind := KindUnreachable
		if errors.As(err, &ue) {
			kind = ue.Kind
		}
		x.respondLocal(kind.Status(), kind.event(), kind.body(), false)
	}
}

// handlerPanicked keeps a bug in the handler from taking the process (and
// every other request) down: the request gets a 502 and the exchange is
// abandoned to the garbage collector rather than reused in an unknown state.
func (p *Proxy) handlerPanicked(ctx *fasthttp.RequestCtx, x *exchange, r any) {
	p.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("proxy handler panicked; this is a bug, please report it")
	if ctx.Response.IsBodyStream() {
		ctx.Response.Reset() // closes the body stream, which finishes x
		ctx.Error("502 Bad Gateway: internal error in replaylink\n", fasthttp.StatusBadGateway)
		return
	}
	if x.ev != nil {
		x.ev.Release()
		x.ev = nil
	}
	countRequest(fasthttp.StatusBadGateway)
	requestsInFlight.Dec()
	p.inflight.Add(-1)
	ctx.Error("502 Bad Gateway: internal error in replaylink\n", fasthttp.StatusBadGateway)
}

// serveError answers requests fasthttp could not parse. They never reach an
// upstream; the Observer still gets an event (without session) unless the
// client was merely too slow.
func (p *Proxy) serveError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	status, reason, body, event := fasthttp.StatusBadRequest, rejectMalformed,
		"400 Bad Request: the request is not valid HTTP/1.1\n", "refused request: malformed HTTP"
	switch {
	case errors.As(err, &small):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, rejectHeaderTooLarge
		body = "431 Request Header Fields Too Large: request line and headers exceed the limit\n"
		event = "refused request: headers too large"
	case isTimeout(err):
		status, reason = fasthttp.StatusRequestTimeout, rejectTimeout
		body, event = "408 Request Timeout\n", "refused request: client too slow"
	}
	rejectedRequests[reason].Inc()
	countRequest(status)
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(body)
	p.log.Debug().Err(err).Int("status", status).Msg("refused a malformed request")
	if reason == rejectTimeout {
		return // mostly connections that never sent a request: no event
	}
	ev := AcquireEvent()
	ev.Seq, ev.Start, ev.Status = p.seq.Add(1), time.Now(), status
	ev.ClientIP = appendAddrIP(ev.ClientIP[:0], ctx.RemoteAddr())
	ev.RequestID = appendRequestID(ev.RequestID[:0], nil)
	ev.ProxyError = append(ev.ProxyError[:0], event...)
	fillRandom(ev.TraceID[:])
	fillRandom(ev.SpanID[:])
	p.observer.RequestStarted(&RequestStart{Seq: ev.Seq, Start: ev.Start, RequestID: ev.RequestID, TraceID: ev.TraceID, SpanID: ev.SpanID})
	p.observer.RequestFinished(ev)
}

// connState keeps the set of client connections a forced shutdown closes.
func (p *Proxy) connState(c net.Conn, s fasthttp.ConnState) {
	switch s {
	case fasthttp.StateNew:
		p.clients.add(c)
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		p.clients.remove(c)
	}
}

// discardObserver stands in when Options.Observer is nil.
type discardObserver struct{}

func (discardObserver) RequestStarted(*RequestStart)    {}
func (discardObserver) RequestFinished(ev *AccessEvent) { ev.Release() }

// fasthttpLogger sends fasthttp's own messages to the debug level: they are
// about misbehaving clients, and SecureErrorLogMessage keeps request
// contents out of them.
type fasthttpLogger struct{ l *zerolog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) { f.l.Debug().Msgf(format, args...) }
