package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/replaylink/replaylink/internal/excerpt"
)

// Policy decides who may use lookup and ingest on the admin listener; health
// and metrics are never behind it (Kubernetes probes and scrapers carry no
// token). Build it with NewPolicy; wrap the lookup and ingest handlers in
// Protect, and the whole listener in SameOriginWrites.
type Policy struct {
	mode   accessMode
	listen string
	sum    [sha256.Size]byte // of the token: compared in constant time and length
}

type accessMode uint8

const (
	modeLoopback accessMode = iota // no token, loopback listener: open to this host
	modeToken                      // Authorization: Bearer <token> required
	modeOpen                       // no token, non-loopback, explicitly allowed
	modeOff                        // no token, non-loopback, not allowed: lookup and ingest are off
)

var (
	rejectedToken = metrics.NewCounter(`replaylink_admin_rejected_total{reason="token"}`)
	rejectedOff   = metrics.NewCounter(`replaylink_admin_rejected_total{reason="off"}`)
	rejectedHost  = metrics.NewCounter(`replaylink_admin_rejected_total{reason="host"}`)
	rejectedCross = metrics.NewCounter(`replaylink_admin_rejected_total{reason="cross_origin"}`)
)

// NewPolicy builds the policy for an admin listener on listen (host:port)
// with the given --admin-token and --allow-remote-lookup, and returns the
// warning to log once at start ("" when there is nothing to warn about).
func NewPolicy(listen, token string, allowRemote bool) (*Policy, string) {
	p := &Policy{listen: listen}
	token = strings.TrimSpace(token)
	switch {
	case token != "":
		p.mode, p.sum = modeToken, sha256.Sum256([]byte(token))
		return p, ""
	case IsLoopback(listen):
		p.mode = modeLoopback
		return p, ""
	case allowRemote:
		p.mode = modeOpen
		return p, fmt.Sprintf("lookup and ingest on the admin listener %s are open to anyone who can reach it (--allow-remote-lookup without --admin-token); session logs can hold private data: set --admin-token (REPLAYLINK_ADMIN_TOKEN)", listen)
	}
	p.mode = modeOff
	return p, p.offMessage() + "; health and metrics are still served"
}

func (p *Policy) offMessage() string {
	return fmt.Sprintf("lookup and ingest are off: the admin listener %s is reachable from other hosts and no --admin-token is set; set --admin-token (REPLAYLINK_ADMIN_TOKEN) and send 'Authorization: Bearer <token>', or allow tokenless access with --allow-remote-lookup", p.listen)
}

// Serving reports whether lookup and ingest answer at all.
func (p *Policy) Serving() bool { return p.mode != modeOff }

// Protect guards next (lookup or ingest): 401 without the right bearer token
// when one is set, 403 with the reason when they are off, and 403 for a
// foreign Host on a tokenless loopback listener, which a web page could
// otherwise reach through DNS rebinding.
func (p *Policy) Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode {
		case modeOff:
			rejectedOff.Inc()
			http.Error(w, p.offMessage(), http.StatusForbidden)
			return
		case modeToken:
			if !p.tokenOK(r.Header.Get("Authorization")) {
				rejectedToken.Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="replaylink admin"`)
				http.Error(w, "missing or wrong admin token: send 'Authorization: Bearer <token>' with the value of --admin-token (REPLAYLINK_ADMIN_TOKEN)", http.StatusUnauthorized)
				return
			}
		case modeLoopback:
			if !loopbackHost(r.Host) {
				rejectedHost.Inc()
				http.Error(w, fmt.Sprintf("Host %q is not a loopback name: without --admin-token, lookup and ingest answer only requests addressed to localhost or a loopback IP", excerpt.Clip(r.Host, 80)), http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// SameOriginWrites guards every route of the admin listener: a request that
// can change state (any method but GET, HEAD and OPTIONS) sent by a web page
// of another origin is refused with 403. Any page can send a "simple" POST
// to 127.0.0.1:9090 (fetch with mode no-cors), and the browser sends it
// with Origin and, today, Sec-Fetch-Site: a Sec-Fetch-Site other than
// same-origin (cross-site, and same-site too: a page on another port of
// localhost is same-site) or an Origin whose host:port is not the Host the
// request was sent to is a page of another origin. Clients that are not
// browsers (curl, log agents) send neither header and pass; so do the
// admin listener's own pages. Reads need no guard: the same-origin policy
// keeps their answers from a foreign page, and loopback listeners refuse a
// foreign Host (DNS rebinding) in Protect.
func SameOriginWrites(next http.Handler) http.Handler {
	// http.CrossOriginProtection implements exactly these rules.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rejectedCross.Inc()
		http.Error(w, fmt.Sprintf("%s %s refused: it was sent by a web page of another origin (Origin %q, Sec-Fetch-Site %q), "+
			"and a page must not push log lines into sessions or change anything here; "+
			"send it from a program (curl, a log agent), which sends neither header",
			r.Method, excerpt.Clip(r.URL.Path, 80), excerpt.Clip(r.Header.Get("Origin"), 80), excerpt.Clip(r.Header.Get("Sec-Fetch-Site"), 20)), http.StatusForbidden)
	}))
	return cop.Handler(next)
}

func (p *Policy) tokenOK(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Comparing digests keeps the time independent of the token's length too.
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], p.sum[:]) == 1
}

// IsLoopback reports whether a listen address (host:port) accepts only
// connections from this host. An empty host or an unspecified IP listens on
// every interface; a host name other than localhost is taken as reachable.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	return loopbackName(host)
}

func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHost checks a request's Host header (host or host:port).
func loopbackHost(hostport string) bool {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return loopbackName(host)
	}
	return loopbackName(strings.Trim(hostport, "[]"))
}
