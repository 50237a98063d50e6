package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Options configures a Proxy. Every field means what it says at zero or
// Validate refuses it, naming the flag that sets it: the defaults are
// config's (package config), none is filled in here. Validate names every
// field that is wrong and how to fix it.
type Options struct {
	// Listen is the address ListenAndServe listens on (Serve ignores it).
	Listen string
	// Upstreams are backend base URLs such as http://127.0.0.1:5000; several
	// are used round robin. Only scheme, host and port are allowed.
	Upstreams []string
	// UpstreamHost, when set, replaces the client's Host header upstream.
	UpstreamHost string

	ConnectTimeout        time.Duration // dialing an upstream (then 504)
	ResponseHeaderTimeout time.Duration // from the request's last byte to the response headers (then 504)
	// IdleTimeout bounds idle keep-alive connections on both sides and any
	// silence while a body is being written to a peer that does not read.
	IdleTimeout time.Duration
	// ClientHeaderTimeout is how long a client may take to send its request
	// line and headers (slowloris protection).
	ClientHeaderTimeout time.Duration
	// MaxHeaderBytes limits request line plus headers (then 431) and the
	// upstream's response headers (then 502).
	MaxHeaderBytes int
	// ClientBodyTimeout is how long a client may take to send its request
	// body, counted from the end of its headers, plus a second for every
	// ClientBodyMinRate bytes it sent (then 408). A slow upload holds an
	// upstream connection, so without a bound a few clients trickling bytes
	// could hold them all.
	ClientBodyTimeout time.Duration
	// ClientBodyMinRate, in bytes per second, extends ClientBodyTimeout for
	// bodies that keep arriving, so a large upload at a fair rate is never
	// cut; 0: no extension, the timeout alone bounds a body.
	ClientBodyMinRate int64
	// MaxConnsPerClient limits the open connections of one client IP
	// address; more are answered 429 and closed.
	MaxConnsPerClient int
	// MaxConnsPerUpstream limits connections to one upstream; requests wait
	// up to ConnectTimeout for a free one (then 503).
	MaxConnsPerUpstream int

	MaxFails     int           // failures in a row that put an upstream into cool-down; at least 1
	FailCooldown time.Duration // how long a failing upstream is skipped; 0: not at all

	// CORSAddSessionHeader adds a session header the browser asked for in a
	// preflight to the upstream's Access-Control-Allow-Headers. The zero
	// value is off; the user-facing flag defaults to on.
	CORSAddSessionHeader bool
	// ErrorBodyBytes is how much of a 5xx response body is kept in the
	// access event, 0 (nothing) to MaxErrorBodyBytes.
	ErrorBodyBytes int
	// RedactQueryParams are query parameter names whose values the access
	// event never keeps, besides the built-in ones (see redact.go).
	RedactQueryParams []string

	Sessions SessionOptions

	// Observer receives every request; nil records nothing (metrics only).
	Observer Observer
	// Logger gets replaylink's own messages; the zero value logs nothing.
	Logger zerolog.Logger
}

// SessionOptions says where the OpenReplay session of a request is found.
type SessionOptions struct {
	// Sources in the order they are tried: header, token, baggage, cookie,
	// query; at least one.
	Sources []ConfiguredSource
	// Cookie names the cookie holding the session id (source "cookie").
	Cookie string
	// Query names the query parameter holding the session id (source "query").
	Query string
	// TokenSecret is OpenReplay's token secret. When set, session tokens are
	// verified and forged ones ignored; without it their ids are taken as
	// SourceTokenUnverified.
	TokenSecret string
}

// MaxErrorBodyBytes is the most of a 5xx body an access event keeps.
const MaxErrorBodyBytes = 16 << 10

// Validate checks every field, naming each problem and its fix.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("proxy: "+format, a...)) }

	if o.Listen != "" {
		if _, _, err := net.SplitHostPort(o.Listen); err != nil {
			bad("Listen %q is not host:port (e.g. :8080)", o.Listen)
		}
	}
	if len(o.Upstreams) == 0 {
		bad("no upstream: give at least one backend URL such as http://127.0.0.1:5000")
	}
	if len(o.Upstreams) > 64 {
		bad("%d upstreams: at most 64 are supported", len(o.Upstreams))
	}
	for i, raw := range o.Upstreams {
		if _, _, err := parseUpstreamURL(raw); err != nil {
			bad("Upstreams[%d]: %v", i, err)
		}
	}
	if strings.ContainsAny(o.UpstreamHost, " \t\r\n/") {
		bad("UpstreamHost %q is not a host name (e.g. api.internal or api.internal:8080)", o.UpstreamHost)
	}
	positive := func(flagName string, v int64) {
		if v <= 0 {
			bad("--%s %d: must be greater than zero", flagName, v)
		}
	}
	positive("connect-timeout", int64(o.ConnectTimeout))
	positive("response-header-timeout", int64(o.ResponseHeaderTimeout))
	positive("idle-timeout", int64(o.IdleTimeout))
	positive("client-header-timeout", int64(o.ClientHeaderTimeout))
	positive("client-body-timeout", int64(o.ClientBodyTimeout))
	positive("max-conns-per-client", int64(o.MaxConnsPerClient))
	positive("max-conns-per-upstream", int64(o.MaxConnsPerUpstream))
	positive("max-fails", int64(o.MaxFails))
	if o.FailCooldown < 0 {
		bad("--fail-cooldown %v: must not be negative (0: no cool-down)", o.FailCooldown)
	}
	if o.ClientBodyMinRate < 0 {
		bad("--client-body-min-rate %d: must not be negative (0: no extension beyond --client-body-timeout)", o.ClientBodyMinRate)
	}
	if o.MaxHeaderBytes < 1024 || o.MaxHeaderBytes > 16<<20 {
		bad("--max-header-bytes %d is out of range: use 1KiB to 16MiB (64KiB is a good default)", o.MaxHeaderBytes)
	}
	if o.ErrorBodyBytes < 0 || o.ErrorBodyBytes > MaxErrorBodyBytes {
		bad("--error-body-bytes %d is out of range: 0 (keep nothing) to 16KiB", o.ErrorBodyBytes)
	}
	if len(o.Sessions.Sources) == 0 {
		bad("--session-source: none given; give at least one of header, token, baggage, cookie, query")
	}
	if _, err := newSessionExtractor(o.Sessions); err != nil {
		errs = append(errs, err)
	}
	if _, err := newQueryRedactor(o.RedactQueryParams); err != nil {
		bad("RedactQueryParams: %v", err)
	}
	return errors.Join(errs...)
}

// parseUpstreamURL turns http://host:port into the dial address and TLS flag.
func parseUpstreamURL(raw string) (addr string, isTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("%q is not a URL; expected e.g. http://127.0.0.1:5000", raw)
	}
	switch u.Scheme {
	case "http":
	case "https":
		isTLS = true
	default:
		return "", false, fmt.Errorf("%q needs http:// or https://", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", false, fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("%q may only have scheme, host and port: requests keep their own path and query", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if isTLS {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port), isTLS, nil
}
