package proxy

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// Seeds live in testdata/fuzz/<FuzzName>; run e.g.
//   go test -run '^$' -fuzz FuzzRequestHeaders -fuzztime 30s ./proxy/

// FuzzRequestHeaders feeds arbitrary header blocks and queries to the header
// scan, the framing check and every session source. Besides not panicking,
// a session taken from a plain source must be a decimal number that is
// literally in the input: nothing is ever made up or forged from pieces.
func FuzzRequestHeaders(f *testing.F) {
	f.Add([]byte("openReplaySession.id: 123\r\n\r\n"), []byte("sid=1"))
	f.Add([]byte("openReplaySession.id: 123] [openReplaySession.id=999\r\nbaggage: openReplaySession.id=5\r\n\r\n"), []byte(""))
	f.Add([]byte("Cookie: a=1; sid=\"77\"\r\nConnection: x, y\r\nX: 1\r\n  folded\r\n\r\n"), []byte("sid=8&sid=9"))
	e, err := newSessionExtractor(SessionOptions{Sources: []ConfiguredSource{LookInHeader, LookInBaggage, LookInCookie, LookInQuery}, Cookie: "sid", Query: "sid"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw, query []byte) {
		var ri requestInfo
		ri.scan(raw)
		_ = ri.framingProblem()
		_ = ri.isUpgrade()
		ri.sess.rawQuery = query
		id, src := e.extract(&ri.sess)
		if (id == 0) != (src == SourceNone) {
			t.Fatalf("session %d with source %q", id, src)
		}
		if id != 0 {
			in := string(raw) + string(query)
			if !strings.Contains(in, strconv.FormatUint(id, 10)) {
				t.Fatalf("session %d from %q is not in the input", id, src)
			}
		}
	})
}

// FuzzBaggage checks the W3C baggage parser on its own.
func FuzzBaggage(f *testing.F) {
	f.Add([]byte("openReplaySession.id=1"))
	f.Add([]byte("a=b;p=1 , openreplaysession.id = 42 ;prop, c=d"))
	f.Add([]byte("openReplaySession.id=123] [openReplaySession.id=999"))
	f.Add([]byte(",,=;=,"))
	f.Fuzz(func(t *testing.T, header []byte) {
		v, ok := baggageValue(header, baggageSessionKey)
		if !ok {
			return
		}
		if !bytes.Contains(header, v) || bytes.ContainsAny(v, ",;") || bytes.HasPrefix(v, []byte(" ")) || bytes.HasSuffix(v, []byte(" ")) {
			t.Fatalf("value %q from %q", v, header)
		}
		if id := parseSessionID(v); id != 0 && strconv.FormatUint(id, 10) != strings.TrimLeft(string(v), "0") {
			t.Fatalf("id %d from value %q", id, v)
		}
	})
}

// FuzzSessionToken checks that whatever the parser accepts is a canonical
// token, and that every signed token parses back and verifies.
func FuzzSessionToken(f *testing.F) {
	f.Add([]byte(SignSessionToken(testSecret, 7700123456789, 3, 1735689600000)), uint64(7700123456789), int64(3), int64(1735689600000))
	f.Add([]byte("1.0.0.11111111111111111111111111111111"), uint64(1), int64(-1), int64(0))
	f.Add([]byte("zzzzzzzzzzzzz.-1.-1.5Q"), uint64(18446744073709551615), int64(-9223372036854775808), int64(9223372036854775807))
	f.Add([]byte("...."), uint64(0), int64(0), int64(0))
	verifier := newTokenVerifier(testSecret)
	f.Fuzz(func(t *testing.T, raw []byte, id uint64, delay, expiry int64) {
		if tok, ok := parseSessionToken(raw); ok {
			if tok.id == 0 || len(tok.body)+1+len(tok.sig) != len(raw) {
				t.Fatalf("accepted %q as %+v", raw, tok)
			}
			var sig [32]byte
			n, ok := decodeBase58(sig[:], tok.sig)
			if !ok || n != 32 || !bytes.Equal(appendBase58(nil, sig[:]), tok.sig) {
				t.Fatalf("signature %q is not the canonical base58 of 32 bytes", tok.sig)
			}
			_ = verifier.verify(&tok)
		}
		if id == 0 {
			return
		}
		signed := SignSessionToken(testSecret, id, delay, expiry)
		tok, ok := parseSessionToken([]byte(signed))
		if !ok || tok.id != id || tok.delay != delay || tok.expiry != expiry || !verifier.verify(&tok) {
			t.Fatalf("signed token %q parsed as %+v, %v", signed, tok, ok)
		}
	})
}

// FuzzBase58 checks encode/decode round trips.
func FuzzBase58(f *testing.F) {
	f.Add([]byte{0, 0, 1})
	f.Add([]byte("hello world"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64 {
			b = b[:64]
		}
		enc := appendBase58(nil, b)
		var out [64]byte
		n, ok := decodeBase58(out[:], enc)
		if !ok || !bytes.Equal(out[len(out)-n:], b) {
			t.Fatalf("%x -> %q -> %x", b, enc, out[len(out)-n:])
		}
	})
}
