package proxy

import (
	"crypto/tls"
	"errors"
	"math/bits"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The transport uses fasthttp.HostClient only as a connection pool (dial,
// keep-alive, idle expiry, connection limit) and speaks HTTP/1.1 on the
// connections itself, because the proxy needs what HostClient.Do hides: a
// response-header timeout that does not also cut long bodies (server-sent
// events), no hidden retries, the error of each step, and the raw connection
// for upgrades. fasthttp still parses the responses.

// pooledConn is the part of fasthttp's pooled connection (an unexported
// type) the proxy uses; exchange.cc holds one as any.
type pooledConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

// putConn hands a pooled connection back with HostClient.ReleaseConn or
// CloseConn. Their method expressions carry the connection's type, which
// lets the generic parameter name what the proxy cannot.
func putConn[C any](put func(*fasthttp.HostClient, C), hc *fasthttp.HostClient, cc any) {
	put(hc, cc.(C))
}

// roundTrip sends x's request to an upstream and reads the response headers.
// It returns nil, errClientBody, or an *UpstreamError. A refused connection
// moves an idempotent request to the next upstream.
func (p *Proxy) roundTrip(x *exchange) error {
	var tried uint64
	var last *UpstreamError
	for {
		i := p.bal.pick(tried, time.Now().UnixNano())
		if i < 0 {
			return last
		}
		u := p.bal.ups[i]
		kind, err := x.tryUpstream(u)
		now := time.Now().UnixNano()
		if err == nil {
			u.succeeded(now)
			return nil
		}
		if err == errClientBody {
			return err
		}
		upstreamErrors[kind].Inc()
		u.failed(now, kind)
		last = &UpstreamError{Kind: kind, Upstream: u.addr, Err: err}
		p.log.Debug().Err(last).Uint64("seq", x.start.Seq).Msg("upstream request failed")
		tried |= 1 << i
		if !kind.Retryable() || !x.idempotent || x.body.started || bits.OnesCount64(tried) >= len(p.bal.ups) {
			return last
		}
		upstreamRetries.Inc()
	}
}

// tryUpstream runs one request on u. A pooled connection is checked before
// it is used (see reuse.go), and one the upstream has closed meanwhile is
// replaced, like net/http does: when writing to it fails before any body
// byte went out, or, for idempotent requests, when it is closed without a
// response. After maxStaleConns of them a fresh connection is dialed.
func (x *exchange) tryUpstream(u *upstream) (ErrorKind, error) {
	const maxStaleConns = 3
	for attempt := 0; ; attempt++ {
		conn, reused, kind, err := x.connect(u, attempt >= maxStaleConns)
		if err != nil {
			return kind, err
		}
		if reused {
			if r := idleRefusal(conn); r != reuseOK {
				reuseRefused[r].Inc()
				x.dropConn(u)
				continue
			}
		}
		werr := x.writeRequest(u, conn)
		if werr == errClientBody {
			x.dropConn(u)
			return 0, werr
		}
		retryable := reused && !x.body.started
		if werr != nil && retryable {
			x.dropConn(u)
			continue
		}
		// Even after a failed write the upstream may have answered (a 413
		// for a body it refuses), so the response is read either way.
		kind, rerr := x.readResponse(u, conn)
		if rerr == nil {
			x.up, x.upWriteFailed = u, werr != nil
			return 0, nil
		}
		x.dropConn(u)
		if retryable && x.idempotent && isConnectionLoss(rerr) {
			continue
		}
		if werr != nil {
			return classifyExchangeError(werr), werr
		}
		return kind, rerr
	}
}

// connect takes a pooled connection, or dials a fresh one for upgrades and
// when fresh is set.
func (x *exchange) connect(u *upstream, fresh bool) (conn net.Conn, reused bool, kind ErrorKind, err error) {
	if x.upgrade || fresh {
		c, err := x.p.dialer.dial(u.addr, 0)
		if err != nil {
			return nil, false, classifyDialError(err), err
		}
		if u.tls != nil {
			c = tls.Client(c, u.tls)
		}
		x.rawConn = c
		return c, false, 0, nil
	}
	cc, err := u.hc.AcquireConn(0, false)
	if err != nil {
		return nil, false, classifyDialError(err), err
	}
	x.cc = cc
	pc := x.cc.(pooledConn)
	return pc.Conn(), !pc.LastUseTime().IsZero(), 0, nil
}

// dropConn closes the connection x holds, if any.
func (x *exchange) dropConn(u *upstream) {
	if x.br != nil {
		u.hc.ReleaseReader(x.br)
		x.br = nil
	}
	if x.cc != nil {
		putConn((*fasthttp.HostClient).CloseConn, u.hc, x.cc)
		x.cc = nil
	}
	if x.rawConn != nil {
		_ = x.rawConn.Close()
		x.rawConn = nil
	}
}

// writeRequest sends the request head and body.
func (x *exchange) writeRequest(u *upstream, conn net.Conn) error {
	idle := x.p.opts.IdleTimeout
	x.head = x.appendHead(x.head[:0], u)
	// A request without a body whose head fits in the socket's send buffer
	// cannot block: on a new connection the buffer is empty, and on a reused
	// one the upstream read the last request before it answered it. Such a
	// request (most GETs) sets and clears no write deadline, which is two
	// timer updates in the runtime per request.
	mayBlock := x.body.framed || len(x.head) > smallHeadBytes
	if mayBlock {
		if err := conn.SetWriteDeadline(time.Now().Add(idle)); err != nil {
			return err
		}
	}
	bw := u.hc.AcquireWriter(conn)
	_, err := bw.Write(x.head)
	if err == nil {
		err = x.body.writeTo(bw, conn, idle)
	}
	if err == nil {
		err = bw.Flush()
	}
	u.hc.ReleaseWriter(bw)
	if err == nil && mayBlock {
		err = conn.SetWriteDeadline(time.Time{})
	}
	return err
}

// smallHeadBytes is less than any socket send buffer Linux gives a TCP
// connection (net.ipv4.tcp_wmem's minimum is 4 KiB, its default 16 KiB).
const smallHeadBytes = 4 << 10

// readResponse reads the response headers within ResponseHeaderTimeout and
// leaves the body as a stream in x.resp.
func (x *exchange) readResponse(u *upstream, conn net.Conn) (ErrorKind, error) {
	if err := conn.SetReadDeadline(time.Now().Add(x.p.opts.ResponseHeaderTimeout)); err != nil {
		return KindReset, err
	}
	x.br = u.hc.AcquireReader(conn)
	resp := &x.resp
	resp.Reset()
	resp.Header.DisableNormalizing()
	// fasthttp would fill in a Content-Type the upstream did not send.
	resp.Header.SetNoDefaultContentType(true)
	resp.StreamBody = true
	framing, err := readHead(x.br, resp)
	if err == nil {
		status := resp.StatusCode()
		bodiless := x.isHead || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
		x.upRefusal = refusalAfter(framing, &resp.Header, bodiless)
		if !bodiless {
			err = resp.ReadBody(x.br, 0)
		}
	}
	if err == nil {
		err = conn.SetReadDeadline(time.Time{})
	}
	if err == nil && resp.StatusCode() == fasthttp.StatusSwitchingProtocols && !x.upgrade {
		err = errors.New("101 Switching Protocols to a request that did not ask to upgrade")
	}
	if err != nil {
		resp.Reset()
		return classifyExchangeError(err), err
	}
	return 0, nil
}

// releaseUpstream returns the connection to the pool when the response was
// read completely, the upstream keeps it open and nothing makes its end
// doubtful (see reuse.go); it closes it otherwise.
func (x *exchange) releaseUpstream(clientOK bool) {
	if x.up == nil {
		return
	}
	u := x.up
	reusable := x.cc != nil && clientOK && !x.upWriteFailed && x.respBody.readErr == nil &&
		(x.respBody.src == nil || x.respBody.eof) && !x.resp.ConnectionClose()
	_ = x.resp.CloseBodyStream()
	if reusable {
		r := x.upRefusal
		if r == reuseOK && x.br.Buffered() > 0 {
			r = refuseStrayBytes
		}
		if r != reuseOK {
			reuseRefused[r].Inc()
			reusable = false
		}
	}
	if reusable {
		u.hc.ReleaseReader(x.br)
		x.br = nil
		putConn((*fasthttp.HostClient).ReleaseConn, u.hc, x.cc)
		x.cc = nil
		return
	}
	x.dropConn(u)
}

// dialer dials upstreams and remembers every connection, so a shutdown whose
// grace period ran out can close them and end the requests still using them.
type dialer struct {
	net.Dialer
	conns connSet
}

func (d *dialer) dial(addr string, _ time.Duration) (net.Conn, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: &d.conns}
	if sc, ok := c.(syscall.Conn); ok {
		tc.raw, _ = sc.SyscallConn()
	}
	tc.peekFD = tc.peek
	d.conns.add(tc)
	return tc, nil
}

// trackedConn leaves its set when closed, and can peek at its socket while
// it idles in the pool. The peek's function value and result live here, set
// up once per connection, so the peek before every reuse allocates nothing;
// a pooled connection is used by one goroutine at a time.
type trackedConn struct {
	net.Conn
	set    *connSet
	once   sync.Once
	raw    syscall.RawConn
	peekFD func(fd uintptr) bool
	peeked reuseRefusal
	buf    [1]byte
}

func (c *trackedConn) peek(fd uintptr) bool {
	c.peeked = peekIdle(fd, c.buf[:])
	return true
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}

// connSet is a set of open connections.
type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[net.Conn]struct{})
	}
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

// closeAll closes every connection in the set.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.m))
	for c := range s.m {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
