package proxy

import (
	"strconv"
	"strings"
	"testing"
)

const testSecret = "openreplay-token-secret"

// extractRaw runs the real path: scan a raw header block, then extract.
func extractRaw(t testing.TB, o SessionOptions, rawHeaders, query string) (uint64, SessionSource) {
	t.Helper()
	e, err := newSessionExtractor(o)
	if err != nil {
		t.Fatal(err)
	}
	var ri requestInfo
	ri.scan([]byte(rawHeaders))
	ri.sess.rawQuery = []byte(query)
	return e.extract(&ri.sess)
}

func TestSessionExtraction(t *testing.T) {
	all := SessionOptions{Sources: []ConfiguredSource{LookInHeader, LookInToken, LookInBaggage, LookInCookie, LookInQuery}, Cookie: "or_sid", Query: "sid"}
	withSecret := all
	withSecret.TokenSecret = testSecret
	good := SignSessionToken(testSecret, 7700123456789, 0, 1900000000000)
	forged := SignSessionToken("some other secret", 4242, 0, 1900000000000)

	tests := []struct {
		name    string
		opts    SessionOptions
		headers string
		query   string
		id      uint64
		src     SessionSource
	}{
		{"header", all, "openReplaySession.id: 12345\r\n", "", 12345, SourceHeader},
		{"header any case", all, "OPENREPLAYSESSION.ID:  987 \r\n", "", 987, SourceHeader},
		{"header max uint64", all, "openreplaysession.id: 18446744073709551615\r\n", "", 18446744073709551615, SourceHeader},
		{"header overflow falls through", all, "openreplaysession.id: 18446744073709551616\r\nbaggage: openReplaySession.id=5\r\n", "", 5, SourceBaggage},
		{"header zero is no session", all, "openreplaysession.id: 0\r\n", "", 0, SourceNone},
		{"header 21 digits", all, "openreplaysession.id: 000000000000000000001\r\n", "", 0, SourceNone},
		{"header forgery attempt", all, "openReplaySession.id: 123] [openReplaySession.id=999\r\n", "", 0, SourceNone},
		{"header negative", all, "openReplaySession.id: -5\r\n", "", 0, SourceNone},
		{"header hex", all, "openReplaySession.id: 0x10\r\n", "", 0, SourceNone},
		{"header wins over token", all, "X-OpenReplay-Session-Token: " + good + "\r\nopenReplaySession.id: 1\r\n", "", 1, SourceHeader},
		{"first header counts", all, "openReplaySession.id: 1\r\nopenReplaySession.id: 2\r\n", "", 1, SourceHeader},
		{"token unverified", all, "X-OpenReplay-Session-Token: " + good + "\r\n", "", 7700123456789, SourceTokenUnverified},
		{"token alt name", all, "x-openreplay-sessiontoken: " + good + "\r\n", "", 7700123456789, SourceTokenUnverified},
		{"token verified", withSecret, "X-OpenReplay-Session-Token: " + good + "\r\n", "", 7700123456789, SourceToken},
		{"token forged is ignored", withSecret, "X-OpenReplay-Session-Token: " + forged + "\r\n", "", 0, SourceNone},
		{"token forged falls through", withSecret, "X-OpenReplay-Session-Token: " + forged + "\r\nCookie: or_sid=77\r\n", "", 77, SourceCookie},
		{"token tampered id", withSecret, "X-OpenReplay-Session-Token: 1" + good + "\r\n", "", 0, SourceNone},
		{"token three parts", all, "X-OpenReplay-Session-Token: abc.def.ghi\r\n", "", 0, SourceNone},
		{"token bad signature alphabet", all, "X-OpenReplay-Session-Token: 1.0.1.0OIl\r\n", "", 0, SourceNone},
		{"baggage", all, "baggage: foo=bar,openReplaySession.id=4711;prop=1, x=y\r\n", "", 4711, SourceBaggage},
		{"baggage second header", all, "baggage: foo=bar\r\nbaggage: openreplaysession.id = 4712\r\n", "", 4712, SourceBaggage},
		{"baggage forgery", all, "baggage: openReplaySession.id=123] [openReplaySession.id=999\r\n", "", 0, SourceNone},
		{"baggage key inside value", all, "baggage: x=[openReplaySession.id=999\r\n", "", 0, SourceNone},
		{"baggage key with space", all, "baggage: bar [openReplaySession.id=999\r\n", "", 0, SourceNone},
		{"baggage percent encoded", all, "baggage: openReplaySession.id=%31%32\r\n", "", 0, SourceNone},
		{"cookie", all, "Cookie: a=b; or_sid=31337; c=d\r\n", "", 31337, SourceCookie},
		{"cookie quoted", all, "Cookie: or_sid=\"31338\"\r\n", "", 31338, SourceCookie},
		{"cookie name is case-sensitive", all, "Cookie: OR_SID=1\r\n", "", 0, SourceNone},
		{"query", all, "", "a=1&sid=555&b", 555, SourceQuery},
		{"query without value", all, "", "sid&x=1", 0, SourceNone},
		{"cookie off by default", testSessions, "Cookie: or_sid=1\r\n", "sid=2", 0, SourceNone},
		{"order is configurable", SessionOptions{Sources: []ConfiguredSource{LookInQuery, LookInHeader}, Query: "sid"}, "openReplaySession.id: 1\r\n", "sid=2", 2, SourceQuery},
		{"source switched off", SessionOptions{Sources: []ConfiguredSource{LookInToken}}, "openReplaySession.id: 1\r\n", "", 0, SourceNone},
		{"nothing", all, "Host: x\r\n", "", 0, SourceNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, src := extractRaw(t, tc.opts, tc.headers+"\r\n", tc.query)
			if id != tc.id || src != tc.src {
				t.Errorf("got %d from %q, want %d from %q", id, src, tc.id, tc.src)
			}
		})
	}
}

func TestInvalidSessionIsCounted(t *testing.T) {
	before := invalidSession[LookInHeader].Get()
	beforeBaggage := invalidSession[LookInBaggage].Get()
	id, _ := extractRaw(t, testSessions, "openReplaySession.id: 123] [openReplaySession.id=999\r\nbaggage: openReplaySession.id=abc\r\n\r\n", "")
	if id != 0 {
		t.Fatalf("forged header produced session %d", id)
	}
	if got := invalidSession[LookInHeader].Get() - before; got != 1 {
		t.Errorf("invalid header counted %d times, want 1", got)
	}
	if got := invalidSession[LookInBaggage].Get() - beforeBaggage; got != 1 {
		t.Errorf("invalid baggage counted %d times, want 1", got)
	}
}

func TestSessionOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		opts SessionOptions
		want string
	}{
		{SessionOptions{Sources: []ConfiguredSource{LookInHeader, numConfigSources}}, "--session-source 5 is not one of header, token"},
		{SessionOptions{Sources: []ConfiguredSource{LookInHeader, LookInHeader}}, "listed twice"},
		{SessionOptions{Sources: []ConfiguredSource{LookInCookie}}, "needs a cookie name"},
		{SessionOptions{Sources: []ConfiguredSource{LookInQuery}}, "needs a query parameter name"},
	} {
		_, err := newSessionExtractor(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to mention %q", tc.opts, err, tc.want)
		}
	}
}

func TestSignAndParseToken(t *testing.T) {
	for _, tc := range []struct {
		id            uint64
		delay, expiry int64
	}{
		{1, 0, 0},
		{7700123456789, 1234, 1735689600000},
		{18446744073709551615, -5, -1},
		{36, 9223372036854775807, -9223372036854775808},
	} {
		tok := SignSessionToken(testSecret, tc.id, tc.delay, tc.expiry)
		parts := strings.Split(tok, ".")
		if len(parts) != 4 || parts[0] != strconv.FormatUint(tc.id, 36) || parts[2] != strconv.FormatInt(tc.expiry, 36) {
			t.Fatalf("token %q does not have OpenReplay's layout", tok)
		}
		pt, ok := parseSessionToken([]byte(tok))
		if !ok || pt.id != tc.id || pt.delay != tc.delay || pt.expiry != tc.expiry {
			t.Fatalf("parse(%q) = %+v, %v", tok, pt, ok)
		}
		if !newTokenVerifier(testSecret).verify(&pt) {
			t.Errorf("%q does not verify with its secret", tok)
		}
		if newTokenVerifier(testSecret + "x").verify(&pt) {
			t.Errorf("%q verifies with a wrong secret", tok)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	sig := string(appendBase58(nil, make([]byte, 32)))
	for _, tok := range []string{
		"", ".", "...", "a.b.c", "a.b.c.d.e", "0.0.0." + sig, "-1.0.0." + sig, "zzzzzzzzzzzzzz.0.0." + sig,
		"1..0." + sig, "1.0.0.", "1.0.0.0" + sig, "1.0.0." + sig + "1", "1.0.0.abc", "1.+1.0." + sig,
		"1.0.0." + strings.Repeat("z", 300),
	} {
		if pt, ok := parseSessionToken([]byte(tok)); ok {
			t.Errorf("parseSessionToken(%q) accepted: %+v", tok, pt)
		}
	}
	if _, ok := parseSessionToken([]byte("1.0.0." + sig)); !ok {
		t.Error("an all-zero signature of 32 bytes is well-formed")
	}
}

func TestBase58(t *testing.T) {
	for _, tc := range []struct{ raw, enc string }{
		{"", ""},
		{"\x00", "1"},
		{"\x00\x00\x01", "112"},
		{"hello world", "StV1DL6CwTryKyV"},
		{"\xff", "5Q"},
	} {
		if got := string(appendBase58(nil, []byte(tc.raw))); got != tc.enc {
			t.Errorf("encode(%q) = %q, want %q", tc.raw, got, tc.enc)
		}
		var buf [32]byte
		n, ok := decodeBase58(buf[:], []byte(tc.enc))
		if !ok || string(buf[len(buf)-n:]) != tc.raw {
			t.Errorf("decode(%q) = %q, %v", tc.enc, buf[len(buf)-n:], ok)
		}
	}
	var small [2]byte
	if _, ok := decodeBase58(small[:], []byte("StV1DL6CwTryKyV")); ok {
		t.Error("decode into a too small buffer succeeded")
	}
}

func TestParseSessionID(t *testing.T) {
	for in, want := range map[string]uint64{
		"1": 1, "007": 7, "18446744073709551615": 18446744073709551615, "18446744073709551616": 0,
		"": 0, "0": 0, " 1": 0, "1.0": 0, "１": 0, "99999999999999999999": 0, "123456789012345678901": 0,
	} {
		if got := parseSessionID([]byte(in)); got != want {
			t.Errorf("parseSessionID(%q) = %d, want %d", in, got, want)
		}
	}
}
