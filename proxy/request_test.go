package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFramingAttacksNeverReachBackend sends requests whose framing two HTTP
// implementations could read differently. Each must get 400 and the backend
// must never see a request.
func TestFramingAttacksNeverReachBackend(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	smuggled := "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tc := range []struct{ name, req string }{
		{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"},
		{"TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"CL twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"CL with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n"},
		{"bare CR at end of value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\r\n\r\n"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"},
		{"space in field name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{"space inside field name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"negative chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"},
		{"huge chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n"},
		{"chunk size with LF only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawRequest(t, tp.addr, tc.req)
			if resp.StatusCode != 400 {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if !resp.Close {
				t.Error("connection kept open after a framing error")
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := rb.count(); n != 0 {
		t.Errorf("the backend received %d requests:\n%s", n, strings.Join(rb.heads, "\n"))
	}
}

// TestBrokenChunkMidStreamAborts: a bad chunk after the first one cannot be
// seen before forwarding starts, but the upstream request is aborted and
// never completes.
func TestBrokenChunkMidStreamAborts(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	resp, _ := rawRequest(t, tp.addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nabc\r\n0\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Errorf("status %d", resp.StatusCode)
	}
	time.Sleep(50 * time.Millisecond)
	if n := rb.count(); n != 0 {
		t.Errorf("the backend completed %d requests", n)
	}
	if ev := tp.rec.next(t); ev.Status != 400 || !strings.Contains(string(ev.ProxyError), "chunked") {
		t.Errorf("event %d %q", ev.Status, ev.ProxyError)
	}
}

func TestOversizedHeaderIs431(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, func(o *Options) { o.MaxHeaderBytes = 4096 })
	resp, _ := rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("a", 5000)+"\r\n\r\n")
	if resp.StatusCode != 431 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if rb.count() != 0 {
		t.Error("oversized request reached the backend")
	}
}

func TestUpstreamHostOverride(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, func(o *Options) { o.UpstreamHost = "api.internal:8080" })
	rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: public.example\r\n\r\n")
	head := rb.lastHead(t)
	if got := headerValues(head, "Host"); len(got) != 1 || got[0] != "api.internal:8080" {
		t.Errorf("Host %q", got)
	}
	if got := headerValues(head, "X-Forwarded-Host"); len(got) != 1 || got[0] != "public.example" {
		t.Errorf("X-Forwarded-Host %q", got)
	}
}

func TestForwardedHeadersFromAnEarlierProxyAreKept(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
	head := rb.lastHead(t)
	for name, want := range map[string]string{
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example", "X-Forwarded-For": "198.51.100.1, 10.0.0.1, 127.0.0.1",
	} {
		if got := headerValues(head, name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestRequestIdentity(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	const tp0 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

	resp, _ := rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: from-client-1\r\ntraceparent: "+tp0+"\r\ntracestate: vendor=1\r\n\r\n")
	head := rb.lastHead(t)
	if resp.Header.Get("X-Request-ID") != "from-client-1" || strings.Join(headerValues(head, "X-Request-ID"), ",") != "from-client-1" {
		t.Errorf("valid request id not kept: client %q upstream %q", resp.Header.Get("X-Request-ID"), headerValues(head, "X-Request-ID"))
	}
	got := headerValues(head, "traceparent")
	if len(got) != 1 || !strings.HasPrefix(got[0], "00-4bf92f3577b34da6a3ce929d0e0e4736-") || got[0] == tp0 || !strings.HasSuffix(got[0], "-00") {
		t.Errorf("traceparent not continued: %q", got)
	}
	if strings.Join(headerValues(head, "tracestate"), ",") != "vendor=1" {
		t.Error("tracestate of a continued trace dropped")
	}
	ev := tp.rec.next(t)
	start := tp.rec.startedFor(t, ev.Seq)
	if fmt.Sprintf("%x", ev.TraceID) != "4bf92f3577b34da6a3ce929d0e0e4736" || start.TraceID != ev.TraceID || start.SpanID != ev.SpanID ||
		string(start.RequestID) != "from-client-1" || !strings.Contains(got[0], fmt.Sprintf("-%x-", ev.SpanID)) {
		t.Errorf("event trace %x span %x, start %+v, sent %q", ev.TraceID, ev.SpanID, start, got)
	}

	resp, _ = rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: bad id]\r\ntraceparent: garbage\r\ntracestate: vendor=1\r\n\r\n")
	head = rb.lastHead(t)
	id := resp.Header.Get("X-Request-ID")
	if len(id) != 32 || strings.Join(headerValues(head, "X-Request-ID"), ",") != id {
		t.Errorf("invalid request id not replaced: %q / %q", id, headerValues(head, "X-Request-ID"))
	}
	if got := headerValues(head, "traceparent"); len(got) != 1 || strings.Contains(got[0], "garbage") {
		t.Errorf("traceparent %q", got)
	}
	if len(headerValues(head, "tracestate")) != 0 {
		t.Error("tracestate of a discarded traceparent forwarded")
	}
	tp.rec.next(t)
}

// TestEverySessionSourceReachesTheEvent sends one request per source and
// checks the access event, the RequestStart and what the upstream saw.
func TestEverySessionSourceReachesTheEvent(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, func(o *Options) {
		o.Sessions = SessionOptions{Sources: []ConfiguredSource{LookInHeader, LookInToken, LookInBaggage, LookInCookie, LookInQuery}, Cookie: "orsid", Query: "orsid"}
	})
	signed := startProxy(t, []string{rb.url}, func(o *Options) { o.Sessions.TokenSecret = testSecret })
	token := SignSessionToken(testSecret, 8400000000000001, 12, 1893456000000)

	for _, tc := range []struct {
		name   string
		proxy  *testProxy
		target string
		header string
		id     uint64
		src    SessionSource
	}{
		{"header", tp, "/", "openReplaySession.id: 1001", 1001, SourceHeader},
		{"token unverified", tp, "/", "X-OpenReplay-Session-Token: " + token, 8400000000000001, SourceTokenUnverified},
		{"token verified", signed, "/", "X-OpenReplay-SessionToken: " + token, 8400000000000001, SourceToken},
		{"baggage", tp, "/", "baggage: userId=7, openReplaySession.id=1003", 1003, SourceBaggage},
		{"cookie", tp, "/", "Cookie: theme=dark; orsid=1004", 1004, SourceCookie},
		{"query", tp, "/p?a=1&orsid=1005", "X-None: 1", 1005, SourceQuery},
		{"forged header", tp, "/", "openReplaySession.id: 123] [openReplaySession.id=999", 0, SourceNone},
		{"forged token", signed, "/", "X-OpenReplay-Session-Token: " + SignSessionToken("wrong", 9, 0, 0), 0, SourceNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := invalidSession[LookInHeader].Get() + invalidSession[LookInToken].Get()
			rawRequest(t, tc.proxy.addr, "GET "+tc.target+" HTTP/1.1\r\nHost: a\r\n"+tc.header+"\r\n\r\n")
			ev := tc.proxy.rec.next(t)
			if ev.Session != tc.id || ev.Source != tc.src {
				t.Errorf("event session %d from %q, want %d from %q", ev.Session, ev.Source, tc.id, tc.src)
			}
			if st := tc.proxy.rec.startedFor(t, ev.Seq); st.Session != tc.id || st.Source != tc.src {
				t.Errorf("start session %d from %q", st.Session, st.Source)
			}
			head := rb.lastHead(t)
			if !strings.Contains(head, "\r\n"+tc.header+"\r\n") {
				t.Errorf("session field not forwarded as it came:\n%s", head)
			}
			got := headerValues(head, "X-OpenReplay-Session-Id")
			if tc.id == 0 {
				if len(got) != 0 {
					t.Errorf("X-OpenReplay-Session-Id %q for no session", got)
				}
				if invalidSession[LookInHeader].Get()+invalidSession[LookInToken].Get() != before+1 {
					t.Error("invalid session not counted")
				}
			} else if len(got) != 1 || got[0] != fmt.Sprint(tc.id) {
				t.Errorf("X-OpenReplay-Session-Id = %q", got)
			}
		})
	}
}

func TestClientCannotSetUpstreamSessionHeader(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-OpenReplay-Session-Id: 999\r\n\r\n")
	if got := headerValues(rb.lastHead(t), "X-OpenReplay-Session-Id"); len(got) != 0 {
		t.Errorf("client-set X-OpenReplay-Session-Id forwarded: %q", got)
	}
}

func TestEventsRedactSecrets(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	rawRequest(t, tp.addr, "GET /cb?state=ok&code=hunter2&access_token=hunter3&X-Api-Key=hunter4 HTTP/1.1\r\nHost: a\r\n"+
		"Authorization: Bearer hunter5\r\nProxy-Authorization: Basic hunter6\r\nCookie: sid=hunter7\r\nUser-Agent: test-agent\r\n\r\n")
	ev := tp.rec.next(t)
	if string(ev.Query) != "state=ok&code=REDACTED&access_token=REDACTED&X-Api-Key=REDACTED" {
		t.Errorf("query %q", ev.Query)
	}
	if string(ev.UserAgent) != "test-agent" {
		t.Errorf("user agent %q", ev.UserAgent)
	}
	if dump := fmt.Sprintf("%s", []any{ev.Method, ev.Path, ev.Query, ev.Upstream, ev.ClientIP, ev.UserAgent, ev.RequestID, ev.ProxyError, ev.ErrorBody}); strings.Contains(dump, "hunter") {
		t.Errorf("a secret reached the event: %s", dump)
	}
	head := rb.lastHead(t)
	if !strings.Contains(head, "Authorization: Bearer hunter5") || !strings.Contains(head, "Cookie: sid=hunter7") {
		t.Error("credentials meant for the backend were not forwarded")
	}
}

func TestCORSPreflight(t *testing.T) {
	type answer struct{ origin, headers, credentials string }
	var current answer
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if current.origin != "" {
			w.Header().Set("Access-Control-Allow-Origin", current.origin)
		}
		if current.headers != "" {
			w.Header().Set("Access-Control-Allow-Headers", current.headers)
		}
		if current.credentials != "" {
			w.Header().Set("Access-Control-Allow-Credentials", current.credentials)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	on := startProxy(t, []string{be.URL}, func(o *Options) { o.Sessions.Sources = []ConfiguredSource{LookInHeader, LookInToken} })
	off := startProxy(t, []string{be.URL}, func(o *Options) { o.CORSAddSessionHeader = false })

	for _, tc := range []struct {
		name      string
		proxy     *testProxy
		upstream  answer
		requested string
		want      []string // Access-Control-Allow-Headers values the browser gets
	}{
		{"adds the session header", on, answer{"https://app.example", "Content-Type", ""}, "content-type, openreplaysession.id", []string{"Content-Type", "openreplaysession.id"}},
		{"adds token headers", on, answer{"https://app.example", "", ""}, "x-openreplay-session-token", []string{"x-openreplay-session-token"}},
		{"already allowed", on, answer{"https://app.example", "content-type, OpenReplaySession.Id", ""}, "openreplaysession.id", []string{"content-type, OpenReplaySession.Id"}},
		{"wildcard allows it", on, answer{"*", "*", ""}, "openreplaysession.id", []string{"*"}},
		{"wildcard with credentials does not", on, answer{"https://app.example", "*", "true"}, "openreplaysession.id", []string{"*", "openreplaysession.id"}},
		{"no CORS from upstream", on, answer{"", "", ""}, "openreplaysession.id", nil},
		{"not a session header", on, answer{"https://app.example", "Content-Type", ""}, "x-custom", []string{"Content-Type"}},
		{"switched off", off, answer{"https://app.example", "Content-Type", ""}, "openreplaysession.id", []string{"Content-Type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current = tc.upstream
			resp, _ := rawRequest(t, tc.proxy.addr, "OPTIONS /api HTTP/1.1\r\nHost: api.example\r\nOrigin: https://app.example\r\n"+
				"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: "+tc.requested+"\r\n\r\n")
			if got := resp.Header.Values("Access-Control-Allow-Headers"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("Access-Control-Allow-Headers %q, want %q", got, tc.want)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.upstream.origin {
				t.Errorf("Access-Control-Allow-Origin changed to %q", got)
			}
			tc.proxy.rec.next(t)
		})
	}
}

// TestExpectContinue: fasthttp answers 100 Continue itself, so the upstream
// gets the body without an Expect field it would answer a second time.
func TestExpectContinue(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim answer %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("final answer %v, %v", resp, err)
	}
	head := rb.lastHead(t)
	if len(headerValues(head, "Expect")) != 0 || rb.bodies[0] != "hello" {
		t.Errorf("upstream got Expect %q and body %q", headerValues(head, "Expect"), rb.bodies[0])
	}
}

func TestAbsoluteFormTarget(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	rawRequest(t, tp.addr, "GET http://app.example/p/q?x=1 HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if line := strings.SplitN(rb.lastHead(t), "\r\n", 2)[0]; line != "GET /p/q?x=1 HTTP/1.1" {
		t.Errorf("request line upstream %q", line)
	}
}

// TestTruncatedUploadNeverCompletes: a client that closes before sending its
// whole Content-Length body must not leave the backend a complete request.
func TestTruncatedUploadNeverCompletes(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 20000))
	time.Sleep(50 * time.Millisecond)
	c.Close()
	ev := tp.rec.next(t)
	if ev.Status != StatusClientClosedRequest || ev.BytesIn != 20000 {
		t.Errorf("event status %d, bytes in %d", ev.Status, ev.BytesIn)
	}
	if n := rb.count(); n != 0 {
		t.Errorf("the backend completed %d requests", n)
	}
}

// TestUntrustedSessionSourcesAreRemoved: a session source that is not
// configured is not trusted, so what carries it is removed before the
// request goes upstream: a backend that prints the openReplaySession.id
// header as OpenReplay's guide says (its marker) must not print a session
// the client chose when only verified tokens count. Only the session
// member of a baggage header goes; the application's members stay.
func TestUntrustedSessionSourcesAreRemoved(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tokenOnly := startProxy(t, []string{rb.url}, func(o *Options) {
		o.Sessions = SessionOptions{Sources: []ConfiguredSource{LookInToken}, TokenSecret: testSecret}
	})
	trusting := startProxy(t, []string{rb.url}, nil)
	token := SignSessionToken(testSecret, 8400000000000001, 0, 1893456000000)
	for _, tc := range []struct {
		name          string
		proxy         *testProxy
		header        string
		want, notWant []string // fields the upstream must and must not see
	}{
		{"header, token only", tokenOnly, "openReplaySession.id: 999\r\nX-OpenReplay-Session-Token: " + token,
			[]string{"X-OpenReplay-Session-Token: " + token, "X-OpenReplay-Session-Id: 8400000000000001"}, []string{"openReplaySession.id"}},
		{"header in another case", tokenOnly, "OPENREPLAYSESSION.ID: 999", nil, []string{"OPENREPLAYSESSION.ID", "X-OpenReplay-Session-Id"}},
		{"baggage member, token only", tokenOnly, "baggage: userId=7, openReplaySession.id=999;p=1, tenant=a",
			[]string{"baggage: userId=7,tenant=a"}, []string{"openReplaySession.id=999"}},
		{"baggage with only the session", tokenOnly, "baggage: OpenReplaySession.Id=999", nil, []string{"baggage", "Id=999"}},
		{"header, trusted", trusting, "openReplaySession.id: 1001", []string{"openReplaySession.id: 1001"}, nil},
		{"baggage, trusted", trusting, "baggage: userId=7, openReplaySession.id=1003", []string{"baggage: userId=7, openReplaySession.id=1003"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rawRequest(t, tc.proxy.addr, "GET / HTTP/1.1\r\nHost: a\r\n"+tc.header+"\r\n\r\n")
			tc.proxy.rec.next(t)
			head := rb.lastHead(t)
			for _, w := range tc.want {
				if !strings.Contains(head, "\r\n"+w+"\r\n") {
					t.Errorf("the upstream did not get %q:\n%s", w, head)
				}
			}
			for _, n := range tc.notWant {
				if strings.Contains(head, n) {
					t.Errorf("the upstream got %q:\n%s", n, head)
				}
			}
		})
	}
	if !(testSessions).TrustsHeader() || (SessionOptions{Sources: []ConfiguredSource{LookInToken, LookInBaggage}}).TrustsHeader() {
		t.Error("TrustsHeader does not follow the sources")
	}
}

// TestClientChosenIDsAreMarked: the Observer is told which ids the client
// chose, since a client may plant them in another user's input.
func TestClientChosenIDsAreMarked(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	const tp1 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name             string
		header           string
		clientID, client bool
	}{
		{"none", "X-None: 1", false, false},
		{"request id", "X-Request-ID: order7f3a9c2e11d04b", true, false},
		{"invalid request id", "X-Request-ID: a b", false, false},
		{"traceparent", "traceparent: " + tp1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\n"+tc.header+"\r\n\r\n")
			ev := tp.rec.next(t)
			st := tp.rec.startedFor(t, ev.Seq)
			if ev.ClientRequestID != tc.clientID || st.ClientRequestID != tc.clientID || ev.ClientTrace != tc.client || st.ClientTrace != tc.client {
				t.Errorf("event %v/%v start %v/%v, want %v/%v", ev.ClientRequestID, ev.ClientTrace, st.ClientRequestID, st.ClientTrace, tc.clientID, tc.client)
			}
		})
	}
}
