package proxy

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestRequestIDValidation(t *testing.T) {
	for in, want := range map[string]bool{
		"abc":                                  true,
		"3f2c1d9e-7a1b-4c2d-9e8f-0a1b2c3d4e5f": true,
		"01HZX3K5V7W9Y1Z3A5C7E9G1J3":           true,
		"dGVzdA==":                             true,
		"svc:req/42@edge+1_2.3":                true,
		strings.Repeat("a", 128):               true,
		strings.Repeat("a", 129):               false,
		"":                                     false,
		"has space":                            false,
		"x]\n[openReplaySession.id=1":          false,
		"quote\"":                              false,
		"ünicode":                              false,
	} {
		if got := validRequestID([]byte(in)); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestAppendRequestID(t *testing.T) {
	if got := string(appendRequestID(nil, []byte("keep-me-1"))); got != "keep-me-1" {
		t.Errorf("valid id replaced by %q", got)
	}
	a := string(appendRequestID(nil, []byte("bad id")))
	b := string(appendRequestID(nil, nil))
	for _, id := range []string{a, b} {
		if len(id) != 32 || !validRequestID([]byte(id)) {
			t.Errorf("generated id %q", id)
		}
		if _, err := hex.DecodeString(id); err != nil {
			t.Errorf("generated id %q is not hex", id)
		}
	}
	if a == b {
		t.Error("two generated ids are equal")
	}
}

func TestTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		in    string
		ok    bool
		flags byte
	}{
		{valid, true, 1},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true, 1},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, 1},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false, 0},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false, 0},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, 0},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, 0},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, 0},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false, 0},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"", false, 0},
	} {
		trace, flags, ok := parseTraceparent([]byte(tc.in))
		if ok != tc.ok || (ok && (flags != tc.flags || hex.EncodeToString(trace[:]) != "4bf92f3577b34da6a3ce929d0e0e4736")) {
			t.Errorf("parseTraceparent(%q) = %x, %d, %v", tc.in, trace, flags, ok)
		}
	}

	var tc traceContext
	tc.begin([]byte(valid), 1)
	out := string(tc.appendTraceparent(nil))
	if !tc.continued || !strings.HasPrefix(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.HasSuffix(out, "-00f067aa0ba902b7-01") || !strings.HasSuffix(out, "-01") {
		t.Errorf("continued traceparent = %q", out)
	}
	if _, _, ok := parseTraceparent([]byte(out)); !ok {
		t.Errorf("the proxy's own traceparent %q does not parse", out)
	}
	tc.begin([]byte(valid), 2) // two traceparent fields: invalid, start over
	if tc.continued || strings.Contains(string(tc.appendTraceparent(nil)), "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Error("a duplicated traceparent was continued")
	}
	tc.begin(nil, 0)
	out = string(tc.appendTraceparent(nil))
	if tc.continued || len(out) != traceparentLen || !strings.HasSuffix(out, "-01") {
		t.Errorf("new traceparent = %q", out)
	}
}

func TestRedactQuery(t *testing.T) {
	r, err := newQueryRedactor([]string{"SSN", "api_sig", " Phone "})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"":                              "",
		"a=1&b=2":                       "a=1&b=2",
		"token=abc":                     "token=REDACTED",
		"q=x&Password=hunter2&z":        "q=x&Password=REDACTED&z",
		"api_key=k&monkey=1":            "api_key=REDACTED&monkey=REDACTED",
		"AUTHORIZATION=x":               "AUTHORIZATION=REDACTED",
		"client_secret=s&code=9":        "client_secret=REDACTED&code=REDACTED",
		"%74oken=x":                     "%74oken=REDACTED",
		"session+id=1&sid=2":            "session+id=REDACTED&sid=2",
		"token":                         "token",
		"a=1&&b":                        "a=1&&b",
		"x=token":                       "x=token",
		strings.Repeat("k", 200) + "=v": strings.Repeat("k", 200) + "=REDACTED",

		// Substring words.
		"passwd=x&user_passwd=y": "passwd=REDACTED&user_passwd=REDACTED",
		"X-Amz-Signature=ab12&X-Amz-Credential=AKIA%2F2024&X-Amz-Date=1": "X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Date=1",
		"Signature=s&credentials=c":                                      "Signature=REDACTED&credentials=REDACTED",
		"jwt=e.y.J&id_jwt=x":                                             "jwt=REDACTED&id_jwt=REDACTED",
		"bearer=b&client_assertion=eyJ&client_assertion_type=urn":        "bearer=REDACTED&client_assertion=REDACTED&client_assertion_type=REDACTED",
		// Short names, as a whole key or one of its words (camelCase too), any case.
		"pwd=1&PWD=2&pass=3&Pass=4&sig=5&SIG=6&otp=7&OTP=8":   "pwd=REDACTED&PWD=REDACTED&pass=REDACTED&Pass=REDACTED&sig=REDACTED&SIG=REDACTED&otp=REDACTED&OTP=REDACTED",
		"user_pass=1&userPass=2&sms-otp=3&smsOTP=4&api.sig=5": "user_pass=REDACTED&userPass=REDACTED&sms-otp=REDACTED&smsOTP=REDACTED&api.sig=REDACTED",
		"p%77d=1&%50ass=2": "p%77d=REDACTED&%50ass=REDACTED",
		// ... but not inside a harmless word.
		"design=a&compass=b&hotpot=c&passenger=d&signup=e&bypass=f": "design=a&compass=b&hotpot=c&passenger=d&signup=e&bypass=f",
		// ';' separates pairs as '&' does, and is kept.
		"a=1;token=2;b=3":  "a=1;token=REDACTED;b=3",
		"pwd=1;q=2&sig=3;": "pwd=REDACTED;q=2&sig=REDACTED;",
		// Names added with --redact-query-param: whole key or a word, any case.
		"ssn=1&user_SSN=2&ssns=3":      "ssn=REDACTED&user_SSN=REDACTED&ssns=3",
		"api_sig=1&API_SIG=2&apisig=3": "api_sig=REDACTED&API_SIG=REDACTED&apisig=3",
		"phone=1&homePhone=2&phones=3": "phone=REDACTED&homePhone=REDACTED&phones=3",
	} {
		if got := string(r.appendRedacted(nil, []byte(in))); got != want {
			t.Errorf("redact(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	// Without added names, they are kept.
	plain, _ := newQueryRedactor(nil)
	if got := string(plain.appendRedacted(nil, []byte("ssn=1&pwd=2"))); got != "ssn=1&pwd=REDACTED" {
		t.Errorf("without added names: %q", got)
	}
	for _, bad := range []string{"", "  ", strings.Repeat("x", 200)} {
		if _, err := newQueryRedactor([]string{bad}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestHeaderScannerAndFraming(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		problem string
	}{
		{"Host: a\r\nContent-Length: 3\r\n\r\n", ""},
		{"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", ""},
		{"Host: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n", ""},
		{"Host: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"Transfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"Transfer-Encoding: identity\r\n\r\n", "Transfer-Encoding other than chunked"},
		{"X-Fold: a\r\n b\r\n\r\n", "malformed header field"},
		{"Foo Bar: x\r\n\r\n", "malformed header field"},
		{"NoColon\r\n\r\n", "malformed header field"},
		{": empty name\r\n\r\n", "malformed header field"},
	} {
		var ri requestInfo
		ri.scan([]byte(tc.raw))
		if got := ri.framingProblem(); !strings.HasPrefix(got, tc.problem) || (tc.problem == "" && got != "") {
			t.Errorf("%q: problem %q, want %q", tc.raw, got, tc.problem)
		}
	}

	var ri requestInfo
	ri.scan([]byte("Connection: keep-alive, X-Secret\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	if !ri.connectionNames([]byte("x-secret")) || ri.connectionNames([]byte("x-other")) || !ri.isUpgrade() {
		t.Errorf("connection options misread: %+v", ri)
	}
}

func TestClassifyHeader(t *testing.T) {
	for name, want := range map[string]headerID{
		"HOST": hdrHost, "te": hdrTE, "Transfer-Encoding": hdrTransferEncoding, "openReplaySession.ID": hdrSessionID,
		"X-OpenReplay-Session-Token": hdrSessionToken, "x-openreplay-sessiontoken": hdrSessionToken,
		"X-OpenReplay-Session-Id": hdrUpstreamSession, "Access-Control-Allow-Credentials": hdrACAllowCredentials,
		"X-Custom": hdrOther, "Hostx": hdrOther, "": hdrOther,
	} {
		if got := classifyHeader([]byte(name)); got != want {
			t.Errorf("classifyHeader(%q) = %d, want %d", name, got, want)
		}
	}
}
