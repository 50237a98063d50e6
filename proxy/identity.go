package proxy

import (
	"encoding/hex"
	"math/rand/v2"
)

// Request identity: every request carries an X-Request-ID and a W3C
// traceparent upstream. A valid incoming X-Request-ID is kept; anything else
// is replaced. An incoming traceparent is continued (same trace id, the
// proxy's own span id as parent); a missing or invalid one starts a trace.

const (
	HeaderRequestID   = "X-Request-ID"
	maxRequestIDLen   = 128
	generatedIDLen    = 32 // hex of 16 random bytes
	traceparentLen    = 55 // "00-" trace(32) "-" span(16) "-" flags(2)
	sampledTraceFlags = 0x01
)

// validRequestID accepts 1 to 128 characters from [A-Za-z0-9] and "-_.:+/=@",
// enough for UUIDs, ULIDs, base64 and most vendor formats, and nothing that
// could break a log line or a header (no spaces, quotes, brackets or
// control characters).
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestIDLen {
		return false
	}
	for _, c := range b {
		if !requestIDChar[c] {
			return false
		}
	}
	return true
}

var requestIDChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.:+/=@" {
		t[c] = true
	}
	return t
}()

// appendRequestID appends a valid incoming id or a new random one.
func appendRequestID(dst, incoming []byte) []byte {
	if validRequestID(incoming) {
		return append(dst, incoming...)
	}
	var raw [16]byte
	fillRandom(raw[:])
	return hex.AppendEncode(dst, raw[:])
}

// traceContext is the trace a request belongs to and the proxy's span in it.
type traceContext struct {
	traceID   [16]byte
	spanID    [8]byte
	flags     byte
	continued bool // the client sent a valid traceparent
}

// begin continues a valid incoming traceparent or starts a new trace. A new
// trace is marked sampled, because OpenTelemetry's default sampler follows
// the parent: an unsampled parent would silently switch tracing off in a
// backend that traced every request before the proxy was put in front of it.
func (tc *traceContext) begin(incoming []byte, count int) {
	fillRandom(tc.spanID[:])
	if count == 1 {
		if trace, flags, ok := parseTraceparent(incoming); ok {
			tc.traceID, tc.flags, tc.continued = trace, flags, true
			return
		}
	}
	fillRandom(tc.traceID[:])
	tc.flags, tc.continued = sampledTraceFlags, false
}

// appendTraceparent writes the version 00 traceparent naming the proxy's span.
func (tc *traceContext) appendTraceparent(dst []byte) []byte {
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tc.traceID[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, tc.spanID[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{tc.flags})
}

// parseTraceparent parses a W3C traceparent: version 00 exactly, or a later
// version (not ff) whose first 55 characters follow version 00's layout.
// Hex must be lower case and neither id may be all zeros.
func parseTraceparent(v []byte) (trace [16]byte, flags byte, ok bool) {
	if len(v) < traceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace, 0, false
	}
	var version [1]byte
	if !decodeLowerHex(version[:], v[0:2]) || version[0] == 0xff {
		return trace, 0, false
	}
	if (version[0] == 0 && len(v) != traceparentLen) || (len(v) > traceparentLen && v[traceparentLen] != '-') {
		return trace, 0, false
	}
	var span [8]byte
	var fl [1]byte
	if !decodeLowerHex(trace[:], v[3:35]) || !decodeLowerHex(span[:], v[36:52]) || !decodeLowerHex(fl[:], v[53:55]) {
		return trace, 0, false
	}
	if trace == [16]byte{} || span == [8]byte{} {
		return trace, 0, false
	}
	return trace, fl[0], true
}

func decodeLowerHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexValue(src[2*i])
		lo, ok2 := lowerHexValue(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func lowerHexValue(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// fillRandom fills b from the runtime's per-thread ChaCha8 generator: fast,
// allocation-free and unpredictable enough for ids that are not secrets.
func fillRandom(b []byte) {
	for len(b) > 0 {
		r := rand.Uint64()
		for i := 0; i < 8 && len(b) > 0; i++ {
			b[0] = byte(r)
			r >>= 8
			b = b[1:]
		}
	}
}
