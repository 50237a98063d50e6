package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/replaylink/replaylink/internal/choice"
)

// Where the OpenReplay session of a request is found. Every value a source
// reads must be a plain decimal session id (or a token carrying one): it is
// parsed into a uint64 and never copied anywhere as text, so a value such as
// "123] [openReplaySession.id=999" cannot forge a session in a log message.

// Header names the session sources read (matched in any case) and the one
// the proxy adds upstream.
const (
	HeaderSessionID        = "openReplaySession.id"
	HeaderSessionToken     = "X-OpenReplay-Session-Token"
	HeaderSessionTokenAlt  = "X-OpenReplay-SessionToken"
	HeaderUpstreamSession  = "X-OpenReplay-Session-Id"
	baggageSessionKey      = "openreplaysession.id"
	maxRepeatedSessionHdrs = 4 // baggage or cookie header lines looked at
)

// sessionInputs holds the raw values the sources read, gathered by one scan
// of the request headers (requestInfo.scan). Slices point into the request.
type sessionInputs struct {
	header    []byte // first openReplaySession.id header
	hasHeader bool
	token     []byte // first session token header
	hasToken  bool
	baggage   [maxRepeatedSessionHdrs][]byte
	nBaggage  int
	cookies   [maxRepeatedSessionHdrs][]byte
	nCookies  int
	rawQuery  []byte
}

// sessionExtractor applies the configured sources in order.
type sessionExtractor struct {
	order  []ConfiguredSource
	cookie []byte
	query  []byte
	tokens *tokenVerifier // nil: tokens are taken unverified
	// configured says which sources are in order: the session inputs of
	// the others are not trusted, and the headers that carry them are
	// removed upstream (exchange.appendHead).
	configured [numConfigSources]bool
}

// ConfiguredSource is one value of --session-source: a place the proxy
// looks for a request's session, tried in the order configured (the
// glossary's "session source"). Where a session was found is a
// SessionSource; the token source yields SourceToken or
// SourceTokenUnverified. Its text form is its name (choice).
type ConfiguredSource uint8

const (
	LookInHeader ConfiguredSource = iota
	LookInToken
	LookInBaggage
	LookInCookie
	LookInQuery
	numConfigSources
)

var configSourceNames = []string{"header", "token", "baggage", "cookie", "query"}

// UnmarshalText reads a source's name, refusing any other word with the
// list of names.
func (s *ConfiguredSource) UnmarshalText(b []byte) error {
	return choice.Parse(s, b, configSourceNames)
}

func (s ConfiguredSource) String() string { return choice.Name(s, configSourceNames) }

func newSessionExtractor(o SessionOptions) (*sessionExtractor, error) {
	e := &sessionExtractor{cookie: []byte(o.Cookie), query: []byte(o.Query)}
	seen := &e.configured
	for _, src := range o.Sources {
		if err := choice.Check("--session-source", src, configSourceNames); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		switch {
		case seen[src]:
			return nil, fmt.Errorf("proxy: session source %s is listed twice", src)
		case src == LookInCookie && (o.Cookie == "" || !isToken([]byte(o.Cookie))):
			return nil, fmt.Errorf("proxy: session source cookie needs a cookie name (got %q)", o.Cookie)
		case src == LookInQuery && (o.Query == "" || strings.ContainsAny(o.Query, "&=#? ")):
			return nil, fmt.Errorf("proxy: session source query needs a query parameter name (got %q)", o.Query)
		}
		seen[src] = true
		e.order = append(e.order, src)
	}
	if o.TokenSecret != "" {
		e.tokens = newTokenVerifier(o.TokenSecret)
	}
	return e, nil
}

// TrustsHeader says whether the openReplaySession.id header is one of the
// configured sources. When it is not, the
// proxy removes it before the request goes upstream, so that the backend
// cannot print a session the client chose; a marker in the backend's
// output is then text.
func (o SessionOptions) TrustsHeader() bool {
	return slices.Contains(o.Sources, LookInHeader)
}

// extract returns the session of a request and where it came from, or
// SourceNone. A source whose value is present but invalid is counted in
// replaylink_invalid_session_total and the next source is tried.
func (e *sessionExtractor) extract(in *sessionInputs) (uint64, SessionSource) {
	for _, src := range e.order {
		id, found, result := e.fromSource(src, in)
		if !found {
			continue
		}
		if id != 0 {
			return id, result
		}
		invalidSession[src].Inc()
	}
	return 0, SourceNone
}

// fromSource reads one source: found says whether it had a value at all, id
// is 0 when that value was invalid.
func (e *sessionExtractor) fromSource(src ConfiguredSource, in *sessionInputs) (id uint64, found bool, result SessionSource) {
	switch src {
	case LookInHeader:
		if in.hasHeader {
			return parseSessionID(in.header), true, SourceHeader
		}
	case LookInToken:
		if in.hasToken {
			t, ok := parseSessionToken(in.token)
			switch {
			case !ok:
				return 0, true, SourceNone
			case e.tokens == nil:
				return t.id, true, SourceTokenUnverified
			case e.tokens.verify(&t):
				return t.id, true, SourceToken
			}
			return 0, true, SourceNone
		}
	case LookInBaggage:
		for _, b := range in.baggage[:in.nBaggage] {
			if v, ok := baggageValue(b, baggageSessionKey); ok {
				return parseSessionID(v), true, SourceBaggage
			}
		}
	case LookInCookie:
		for _, c := range in.cookies[:in.nCookies] {
			if v, ok := cookieValue(c, e.cookie); ok {
				return parseSessionID(v), true, SourceCookie
			}
		}
	case LookInQuery:
		if v, ok := queryValue(in.rawQuery, e.query); ok {
			return parseSessionID(v), true, SourceQuery
		}
	}
	return 0, false, SourceNone
}

// parseSessionID parses a decimal uint64 of 1 to 20 digits; 0 means invalid
// (and 0 itself is no session).
func parseSessionID(b []byte) uint64 {
	if len(b) == 0 || len(b) > 20 {
		return 0
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0
		}
		v = v*10 + d
	}
	return v
}

// appendBaggageWithout appends a baggage header's value without its
// members whose key is key (lower case, matched in any case), and reports
// whether any member is left. Members are kept as they were written.
func appendBaggageWithout(dst, header []byte, key string) ([]byte, bool) {
	kept := false
	for len(header) > 0 {
		var member []byte
		member, header, _ = bytes.Cut(header, []byte{','})
		name := member
		if i := bytes.IndexAny(name, "=;"); i >= 0 {
			name = name[:i]
		}
		if equalFoldLower(trimOWS(name), key) || len(trimOWS(member)) == 0 {
			continue
		}
		if kept {
			dst = append(dst, ',')
		}
		dst = append(dst, trimOWS(member)...)
		kept = true
	}
	return dst, kept
}

// baggageValue finds key (lower case, matched in any case) in a W3C baggage
// header: members "key=value;property" separated by commas. The value is
// returned as it is (no percent-decoding: a session id needs none).
func baggageValue(header []byte, key string) ([]byte, bool) {
	for len(header) > 0 {
		var member []byte
		member, header, _ = bytes.Cut(header, []byte{','})
		if i := bytes.IndexByte(member, ';'); i >= 0 {
			member = member[:i]
		}
		eq := bytes.IndexByte(member, '=')
		if eq < 0 {
			continue
		}
		if equalFoldLower(trimOWS(member[:eq]), key) {
			return trimOWS(member[eq+1:]), true
		}
	}
	return nil, false
}

// cookieValue finds the cookie called name (case-sensitive) in a Cookie
// header "a=1; b=2" and strips optional double quotes from its value.
func cookieValue(header, name []byte) ([]byte, bool) {
	for len(header) > 0 {
		var pair []byte
		if i := bytes.IndexByte(header, ';'); i >= 0 {
			pair, header = header[:i], header[i+1:]
		} else {
			pair, header = header, nil
		}
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || !bytes.Equal(trimOWS(pair[:eq]), name) {
			continue
		}
		v := trimOWS(pair[eq+1:])
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return nil, false
}

// queryValue finds the first parameter called name (compared as sent) in a
// raw query string.
func queryValue(rawQuery, name []byte) ([]byte, bool) {
	for len(rawQuery) > 0 {
		var pair []byte
		if i := bytes.IndexByte(rawQuery, '&'); i >= 0 {
			pair, rawQuery = rawQuery[:i], rawQuery[i+1:]
		} else {
			pair, rawQuery = rawQuery, nil
		}
		k, v := pair, []byte(nil)
		if eq := bytes.IndexByte(pair, '='); eq >= 0 {
			k, v = pair[:eq], pair[eq+1:]
		}
		if bytes.Equal(k, name) {
			return v, true
		}
	}
	return nil, false
}
