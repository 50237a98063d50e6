package proxy

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// upstream is one backend: its connection pool and its passive health.
// Health is updated by every request goroutine with atomics only: MaxFails
// failures in a row put it into cool-down for FailCooldown; any response (of
// any status) ends the cool-down and resets the count.
type upstream struct {
	addr  string // host:port, as dialed and reported
	addrB []byte
	hc    *fasthttp.HostClient
	tls   *tls.Config // for https upstreams, nil otherwise

	maxFails  int32
	cooldown  time.Duration
	fails     atomic.Int32
	downUntil atomic.Int64 // unix nanos; 0 when healthy
	lastOK    atomic.Int64 // unix nanos of the last response or probe
	healthy   *metrics.Gauge
	log       *zerolog.Logger
}

// usable reports whether the upstream is outside its cool-down.
func (u *upstream) usable(now int64) bool {
	d := u.downUntil.Load()
	return d == 0 || now >= d
}

// succeeded records a response from the upstream.
func (u *upstream) succeeded(now int64) {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
	// Writing the shared timestamp at most every 100ms keeps its cache line
	// from bouncing between CPUs on every request.
	if now-u.lastOK.Load() > int64(100*time.Millisecond) {
		u.lastOK.Store(now)
	}
	if d := u.downUntil.Load(); d != 0 && u.downUntil.CompareAndSwap(d, 0) {
		u.healthy.Set(1)
		u.log.Info().Str("upstream", u.addr).Msg("upstream answers again")
	}
}

// failed records a failure that says something about the upstream's health.
func (u *upstream) failed(now int64, kind ErrorKind) {
	if !kind.countsAgainstHealth() {
		return
	}
	if u.fails.Add(1) < u.maxFails {
		return
	}
	u.fails.Store(0)
	wasUsable := u.usable(now)
	u.downUntil.Store(now + int64(u.cooldown))
	if wasUsable {
		u.healthy.Set(0)
		u.log.Warn().Str("upstream", u.addr).Str("kind", kind.String()).
			Dur("cooldown", u.cooldown).Msg("upstream failed repeatedly; skipping it for the cool-down")
	}
}

// probe dials the upstream to find out whether it accepts connections; the
// connection is closed at once. It serves Ready before traffic has shown
// whether the upstream is up. A probe is not traffic: a refused probe does
// not count towards the cool-down (readiness polls while a backend starts
// would otherwise keep it skipped for a whole cool-down after it came up),
// and an accepted one ends it.
func (u *upstream) probe(timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", u.addr, timeout)
	if err != nil {
		return false
	}
	_ = c.Close()
	now := time.Now().UnixNano()
	u.succeeded(now)
	u.lastOK.Store(now)
	return true
}

// balancer picks upstreams round robin, skipping those in cool-down.
type balancer struct {
	ups  []*upstream
	next atomic.Uint32
}

// pick returns the next usable upstream not in tried (a bit set by index).
// When every untried upstream is in cool-down it still returns one: with a
// single backend that restarts, failing fast for the whole cool-down would
// turn a blip into an outage. It returns -1 when all have been tried.
func (b *balancer) pick(tried uint64, now int64) int {
	n := len(b.ups)
	start := int(b.next.Add(1) - 1)
	fallback := -1
	for i := 0; i < n; i++ {
		j := (start + i) % n
		if tried&(1<<j) != 0 {
			continue
		}
		if b.ups[j].usable(now) {
			return j
		}
		if fallback < 0 {
			fallback = j
		}
	}
	return fallback
}
