package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Every client connection may end up holding an upstream connection (a
// request body streams while the upstream reads it), and the upstream's
// connections are capped (MaxConnsPerUpstream). Without a share per client,
// one address opening connections that stall mid-upload fills the cap and
// every other client waits, then gets 503. clientLimitListener counts the
// open connections of each client IP address and refuses the one over
// MaxConnsPerClient with a 429 before fasthttp ever sees it, counted in
// replaylink_rejected_connections_total{reason="per_client_limit"}.
//
// Behind a load balancer every connection comes from the balancer's
// address: MaxConnsPerClient must then exceed what it opens.

// clientLimitListener wraps the proxy's listener.
type clientLimitListener struct {
	net.Listener
	max      int
	log      *zerolog.Logger
	mu       sync.Mutex
	open     map[netip.Addr]int
	lastWarn atomic.Int64 // unix nanos of the last refusal logged
}

var _ net.Listener = (*clientLimitListener)(nil)
var _ net.Conn = (*limitedConn)(nil)

func newClientLimitListener(ln net.Listener, max int, log *zerolog.Logger) *clientLimitListener {
	return &clientLimitListener{Listener: ln, max: max, log: log, open: make(map[netip.Addr]int)}
}

// Accept returns the next connection whose address is under its limit;
// the others are refused on the way.
func (l *clientLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil // not an IP connection: nothing to count by
		}
		ip := ap.Addr().Unmap()
		if l.acquire(ip) {
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		rejectedConns[rejectPerClientLimit].Inc()
		l.warn(ip)
		refuseConn(c)
	}
}

func (l *clientLimitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.max {
		return false
	}
	l.open[ip]++
	return true
}

func (l *clientLimitListener) release(ip netip.Addr) {
	l.mu.Lock()
	if l.open[ip] <= 1 {
		delete(l.open, ip)
	} else {
		l.open[ip]--
	}
	l.mu.Unlock()
}

// warn logs a refusal at most once a minute: under attack the metric
// counts, and behind a load balancer the log says which limit to raise.
func (l *clientLimitListener) warn(ip netip.Addr) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Minute) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn().Str("client", ip.String()).Int("max_conns_per_client", l.max).
		Msg("refused a connection: the client address has too many open (raise --max-conns-per-client if it is a load balancer)")
}

// refusedAnswer is all a refused connection gets before it is closed.
var refusedAnswer = func() []byte {
	const body = "429 Too Many Requests: too many connections from your address\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// refuseConn answers and closes a connection in the accept loop. The
// answer fits in any socket's empty send buffer, and the deadline keeps a
// broken socket from holding up the loop all the same.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(refusedAnswer)
	_ = c.Close()
}

// limitedConn gives its address's slot back when closed.
type limitedConn struct {
	net.Conn
	l      *clientLimitListener
	ip     netip.Addr
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return c.Conn.Close()
}
