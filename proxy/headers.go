package proxy

import (
	"bytes"
)

// The request headers are read from the block fasthttp kept as it came on
// the wire (RequestHeader.RawHeaders), so the proxy sees and forwards every
// field in its original order, spelling and repetition. fasthttp has already
// rejected bare CR, NUL, duplicate Content-Length or Host and unknown
// transfer codings; requestInfo adds the checks it leaves to the handler.

// headerScanner walks a raw header block: "Name: value" lines ended by CRLF
// and an empty line. A line that is not a plain field (an obs-fold
// continuation, a name that is not a token, no colon) stops it with bad set.
type headerScanner struct {
	b          []byte
	key, value []byte
	bad        bool
}

func (s *headerScanner) next() bool {
	if len(s.b) == 0 {
		return false
	}
	var line []byte
	if i := bytes.IndexByte(s.b, '\n'); i >= 0 {
		line, s.b = s.b[:i], s.b[i+1:]
	} else {
		line, s.b = s.b, nil
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		s.b = nil
		return false
	}
	colon := bytes.IndexByte(line, ':')
	if line[0] == ' ' || line[0] == '\t' || colon <= 0 || !isToken(line[:colon]) {
		s.bad, s.b = true, nil
		return false
	}
	s.key, s.value = line[:colon], trimOWS(line[colon+1:])
	return true
}

// headerID names the request and response fields the proxy acts on.
type headerID uint8

const (
	hdrOther headerID = iota
	hdrHost
	hdrContentLength
	hdrTransferEncoding
	hdrConnection
	hdrKeepAlive
	hdrProxyConnection
	hdrProxyAuthorization
	hdrProxyAuthenticate
	hdrTE
	hdrTrailer
	hdrUpgrade
	hdrExpect
	hdrXForwardedFor
	hdrXForwardedProto
	hdrXForwardedHost
	hdrXRequestID
	hdrTraceparent
	hdrTracestate
	hdrSessionID
	hdrSessionToken
	hdrUpstreamSession
	hdrBaggage
	hdrCookie
	hdrUserAgent
	hdrOrigin
	hdrACRequestMethod
	hdrACRequestHeaders
	hdrACAllowOrigin
	hdrACAllowHeaders
	hdrACAllowCredentials
)

// classifyHeader maps a field name (any case) to its headerID. It switches
// on the length first so most names cost one or two comparisons.
func classifyHeader(name []byte) headerID {
	switch len(name) {
	case 2:
		if equalFoldLower(name, "te") {
			return hdrTE
		}
	case 4:
		if equalFoldLower(name, "host") {
			return hdrHost
		}
	case 6:
		switch {
		case equalFoldLower(name, "cookie"):
			return hdrCookie
		case equalFoldLower(name, "expect"):
			return hdrExpect
		case equalFoldLower(name, "origin"):
			return hdrOrigin
		}
	case 7:
		switch {
		case equalFoldLower(name, "upgrade"):
			return hdrUpgrade
		case equalFoldLower(name, "trailer"):
			return hdrTrailer
		case equalFoldLower(name, "baggage"):
			return hdrBaggage
		}
	case 10:
		switch {
		case equalFoldLower(name, "connection"):
			return hdrConnection
		case equalFoldLower(name, "keep-alive"):
			return hdrKeepAlive
		case equalFoldLower(name, "user-agent"):
			return hdrUserAgent
		case equalFoldLower(name, "tracestate"):
			return hdrTracestate
		}
	case 11:
		if equalFoldLower(name, "traceparent") {
			return hdrTraceparent
		}
	case 12:
		if equalFoldLower(name, "x-request-id") {
			return hdrXRequestID
		}
	case 14:
		if equalFoldLower(name, "content-length") {
			return hdrContentLength
		}
	case 15:
		if equalFoldLower(name, "x-forwarded-for") {
			return hdrXForwardedFor
		}
	case 16:
		switch {
		case equalFoldLower(name, "proxy-connection"):
			return hdrProxyConnection
		case equalFoldLower(name, "x-forwarded-host"):
			return hdrXForwardedHost
		}
	case 17:
		switch {
		case equalFoldLower(name, "transfer-encoding"):
			return hdrTransferEncoding
		case equalFoldLower(name, "x-forwarded-proto"):
			return hdrXForwardedProto
		}
	case 18:
		if equalFoldLower(name, "proxy-authenticate") {
			return hdrProxyAuthenticate
		}
	case 19:
		if equalFoldLower(name, "proxy-authorization") {
			return hdrProxyAuthorization
		}
	case 20:
		if equalFoldLower(name, "openreplaysession.id") {
			return hdrSessionID
		}
	case 23:
		if equalFoldLower(name, "x-openreplay-session-id") {
			return hdrUpstreamSession
		}
	case 25:
		if equalFoldLower(name, "x-openreplay-sessiontoken") {
			return hdrSessionToken
		}
	case 26:
		if equalFoldLower(name, "x-openreplay-session-token") {
			return hdrSessionToken
		}
	case 27:
		if equalFoldLower(name, "access-control-allow-origin") {
			return hdrACAllowOrigin
		}
	case 28:
		if equalFoldLower(name, "access-control-allow-headers") {
			return hdrACAllowHeaders
		}
	case 29:
		if equalFoldLower(name, "access-control-request-method") {
			return hdrACRequestMethod
		}
	case 30:
		if equalFoldLower(name, "access-control-request-headers") {
			return hdrACRequestHeaders
		}
	case 32:
		if equalFoldLower(name, "access-control-allow-credentials") {
			return hdrACAllowCredentials
		}
	}
	return hdrOther
}

// isHopByHop reports the fields that describe one connection (RFC 9110
// section 7.6.1, plus the Proxy-* fields addressed to the proxy itself);
// they are never forwarded in either direction.
func isHopByHop(id headerID) bool {
	switch id {
	case hdrConnection, hdrKeepAlive, hdrProxyConnection, hdrProxyAuthorization,
		hdrProxyAuthenticate, hdrTE, hdrTrailer, hdrTransferEncoding, hdrUpgrade:
		return true
	}
	return false
}

const maxConnectionHeaders = 4

// requestInfo is what one scan of the request headers learns: framing,
// connection options, identity, session inputs and CORS preflight fields.
// Its slices point into the request and are valid during the handler only.
type requestInfo struct {
	malformed    bool // a line that is not a plain field (obs-fold, bad name)
	nCL, nTE     int
	te           []byte
	connection   [maxConnectionHeaders][]byte // Connection header values
	nConn        int
	upgrade      []byte
	requestID    []byte // first X-Request-ID
	traceparent  []byte
	nTraceparent int
	userAgent    []byte
	origin       bool
	acrMethod    bool
	acrHeaders   [maxConnectionHeaders][]byte
	nACRHeaders  int
	sess         sessionInputs
}

func (ri *requestInfo) scan(raw []byte) {
	*ri = requestInfo{}
	s := headerScanner{b: raw}
	for s.next() {
		switch classifyHeader(s.key) {
		case hdrContentLength:
			ri.nCL++
		case hdrTransferEncoding:
			ri.nTE++
			ri.te = s.value
		case hdrConnection:
			if ri.nConn < len(ri.connection) {
				ri.connection[ri.nConn] = s.value
				ri.nConn++
			} else {
				ri.malformed = true // nobody sends that many; refuse rather than half-strip
			}
		case hdrUpgrade:
			ri.upgrade = s.value
		case hdrXRequestID:
			if ri.requestID == nil {
				ri.requestID = s.value
			}
		case hdrTraceparent:
			ri.nTraceparent++
			ri.traceparent = s.value
		case hdrUserAgent:
			ri.userAgent = s.value
		case hdrOrigin:
			ri.origin = true
		case hdrACRequestMethod:
			ri.acrMethod = true
		case hdrACRequestHeaders:
			if ri.nACRHeaders < len(ri.acrHeaders) {
				ri.acrHeaders[ri.nACRHeaders] = s.value
				ri.nACRHeaders++
			}
		case hdrSessionID:
			if !ri.sess.hasHeader {
				ri.sess.header, ri.sess.hasHeader = s.value, true
			}
		case hdrSessionToken:
			if !ri.sess.hasToken {
				ri.sess.token, ri.sess.hasToken = s.value, true
			}
		case hdrBaggage:
			if ri.sess.nBaggage < len(ri.sess.baggage) {
				ri.sess.baggage[ri.sess.nBaggage] = s.value
				ri.sess.nBaggage++
			}
		case hdrCookie:
			if ri.sess.nCookies < len(ri.sess.cookies) {
				ri.sess.cookies[ri.sess.nCookies] = s.value
				ri.sess.nCookies++
			}
		}
	}
	if s.bad {
		ri.malformed = true
	}
}

// framingProblem names why the request's framing is ambiguous, or returns "".
// Such a request is answered 400 and never reaches an upstream.
func (ri *requestInfo) framingProblem() string {
	switch {
	case ri.malformed:
		return "malformed header field (line folding or a name that is not a token)"
	case ri.nCL > 0 && ri.nTE > 0:
		return "both Content-Length and Transfer-Encoding"
	case ri.nTE > 0 && !equalFoldLower(ri.te, "chunked"):
		return "Transfer-Encoding other than chunked"
	}
	return ""
}

// connectionNames reports whether a Connection header lists name, which
// makes that field hop-by-hop too.
func (ri *requestInfo) connectionNames(name []byte) bool {
	for _, v := range ri.connection[:ri.nConn] {
		if listHasToken(v, name) {
			return true
		}
	}
	return false
}

// isUpgrade reports a request asking to switch protocols (WebSocket).
func (ri *requestInfo) isUpgrade() bool {
	if len(ri.upgrade) == 0 {
		return false
	}
	for _, v := range ri.connection[:ri.nConn] {
		if listHasTokenString(v, "upgrade") {
			return true
		}
	}
	return false
}

// listHasToken reports whether a comma-separated header value contains tok
// (any case).
func listHasToken(list, tok []byte) bool {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		if bytes.EqualFold(trimOWS(item), tok) {
			return true
		}
	}
	return false
}

// listHasTokenString is listHasToken for a lower-case literal.
func listHasTokenString(list []byte, tok string) bool {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		if equalFoldLower(trimOWS(item), tok) {
			return true
		}
	}
	return false
}

// equalFoldLower compares b in any case with lower, which must be lower case.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isToken reports an RFC 9110 token, the syntax of field names.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
