package proxy

import "bytes"

// Browsers send a CORS preflight before a cross-origin request that carries
// a custom header such as openReplaySession.id. A backend that has never
// heard of that header leaves it out of Access-Control-Allow-Headers, the
// browser then blocks the real request, and adding session headers to the
// frontend breaks the app. So when the upstream answers a preflight, allows
// the origin (Access-Control-Allow-Origin is present) and does not allow a
// session header the browser asked for, the proxy adds that header. It never
// adds or widens Access-Control-Allow-Origin: which origins may call the
// backend stays the backend's decision.

// copyResponseHeaders copies the upstream's end-to-end response fields to the
// client's response in order, dropping hop-by-hop ones (and those named in
// Connection), and fixes a preflight answer (see above).
func (x *exchange) copyResponseHeaders() {
	src, dst := &x.resp.Header, &x.ctx.Response.Header

	var connection [maxConnectionHeaders][]byte
	nConn := 0
	for k, v := range src.All() {
		if classifyHeader(k) == hdrConnection && nConn < len(connection) {
			connection[nConn] = v
			nConn++
		}
	}

	var allowOrigin, allowCredentials bool
	var allowHeaders [maxConnectionHeaders][]byte
	nAllow := 0
	for k, v := range src.All() {
		id := classifyHeader(k)
		switch {
		case isHopByHop(id), id == hdrContentLength, id == hdrXRequestID:
			continue
		case nConn > 0 && namedIn(connection[:nConn], k):
			continue
		case id == hdrACAllowOrigin:
			allowOrigin = true
		case id == hdrACAllowCredentials:
			allowCredentials = equalFoldLower(v, "true")
		case id == hdrACAllowHeaders && nAllow < len(allowHeaders):
			allowHeaders[nAllow] = v
			nAllow++
		}
		dst.AddBytesKV(k, v)
	}
	if x.preflight && allowOrigin {
		x.addSessionHeadersToPreflight(allowHeaders[:nAllow], allowCredentials)
	}
}

func namedIn(connection [][]byte, name []byte) bool {
	for _, v := range connection {
		if listHasToken(v, name) {
			return true
		}
	}
	return false
}

// addSessionHeadersToPreflight adds an Access-Control-Allow-Headers field
// with each enabled session header the browser asked for in
// Access-Control-Request-Headers and the upstream did not allow. A "*" in
// the upstream's list allows every header unless credentials are allowed
// too, in which case browsers read it as a literal name.
func (x *exchange) addSessionHeadersToPreflight(allowed [][]byte, credentials bool) {
	if !credentials {
		for _, v := range allowed {
			if listHasTokenString(v, "*") {
				return
			}
		}
	}
	add := x.scratch[:0]
	for _, requested := range x.info.acrHeaders[:x.info.nACRHeaders] {
		for len(requested) > 0 {
			var name []byte
			if i := bytes.IndexByte(requested, ','); i >= 0 {
				name, requested = trimOWS(requested[:i]), requested[i+1:]
			} else {
				name, requested = trimOWS(requested), nil
			}
			if !x.p.isSessionHeader(name) || namedIn(allowed, name) || listHasToken(add, name) {
				continue
			}
			if len(add) > 0 {
				add = append(add, ", "...)
			}
			add = append(add, name...)
		}
	}
	x.scratch = add
	if len(add) > 0 {
		x.ctx.Response.Header.AddBytesKV([]byte("Access-Control-Allow-Headers"), add)
	}
}

// isSessionHeader reports a header name an enabled session source reads.
func (p *Proxy) isSessionHeader(name []byte) bool {
	switch classifyHeader(name) {
	case hdrSessionID:
		return p.sessions.configured[LookInHeader]
	case hdrSessionToken:
		return p.sessions.configured[LookInToken]
	}
	return false
}
