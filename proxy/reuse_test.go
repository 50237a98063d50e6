package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// misbehavingBackend is an HTTP/1.1 backend that breaks framing on purpose,
// the way buggy backends do. Every answer names the id of the request it
// belongs to (query id=...) in X-Echo-Id and in its body, so a client can
// tell whose response it got. Its misbehaviours, by path:
//
//	/own          a correct response
//	/extra        a correct response, then a second, unsolicited one
//	/extra-same   the same, both in one write
//	HEAD /head    headers announcing a body, then the body anyway (do_HEAD = do_GET)
//	/nocontent    204 with a Content-Length, then that body
//	/nocontent-bare  204 without a Content-Length, then a body
//
// What comes after a response is itself a complete response for the same
// id: if the proxy ever reads it as the next request's answer, that client
// receives another one's response, which is the leak under test. A late
// write comes delay after the response; strays counts the late writes done,
// so a test can send its next request once the stray bytes are on the way.
type misbehavingBackend struct {
	url    string
	delay  time.Duration
	strays atomic.Int64
	conns  atomic.Int64
}

// startMisbehavingBackend starts the backend, speaking TLS with tlsConfig
// when it is not nil.
func startMisbehavingBackend(t *testing.T, tlsConfig *tls.Config) *misbehavingBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb := &misbehavingBackend{url: "http://" + ln.Addr().String(), delay: 10 * time.Millisecond}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		mb.url = "https://" + ln.Addr().String()
	}
	var wg sync.WaitGroup
	var open sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mb.conns.Add(1)
			open.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				mb.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return mb
}

// echoResponse is a complete response for id: status 200 (or the given
// one), X-Echo-Id and a body naming id.
func echoResponse(status int, id, what string) string {
	body := what + " " + id
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), id, len(body), body)
}

func (mb *misbehavingBackend) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		id := req.URL.Query().Get("id")
		stray := echoResponse(200, id, "stray for")
		var now, later string
		switch req.URL.Path {
		case "/extra":
			now, later = echoResponse(200, id, "own"), stray
		case "/extra-same":
			now = echoResponse(200, id, "own") + stray

		case "/head":
			now = fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(stray))
			later = stray
		case "/nocontent":
			now = fmt.Sprintf("HTTP/1.1 204 No Content\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(stray))
			later = stray
		case "/nocontent-bare":
			now = fmt.Sprintf("HTTP/1.1 204 No Content\r\nX-Echo-Id: %s\r\n\r\n", id)
			later = stray
		default:
			now = echoResponse(200, id, "own")
		}
		if _, err := io.WriteString(c, now); err != nil {
			return
		}
		if later != "" {
			time.Sleep(mb.delay)
			if _, err := io.WriteString(c, later); err != nil {
				return
			}
			mb.strays.Add(1)
		}
	}
}

// ownAnswer sends method path?id=id through the proxy on a connection of
// its own and reports what is wrong with the answer, or "" when it is the
// request's own.
func ownAnswer(client *http.Client, base, method, path, id string) string {
	req, err := http.NewRequest(method, base+path+"?id="+id, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus, wantBody := 200, "own "+id
	switch {
	case method == http.MethodHead:
		wantBody = ""
	case strings.HasPrefix(path, "/nocontent"):
		wantStatus, wantBody = 204, ""
	}
	if err != nil || resp.StatusCode != wantStatus || resp.Header.Get("X-Echo-Id") != id || string(body) != wantBody {
		return fmt.Sprintf("%s %s?id=%s got %d X-Echo-Id=%q body %q (%v), want %d with its own id",
			method, path, id, resp.StatusCode, resp.Header.Get("X-Echo-Id"), body, err, wantStatus)
	}
	return ""
}

// newClient is a client with its own keep-alive connections to the proxy.
func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
}

// TestBackendCannotDesyncPooledConnections: a backend that sends bytes after
// a response (an unsolicited second response, a body on a HEAD or 204
// answer) must never make the proxy hand those bytes to the next request on
// the pooled connection. Each misbehaving request is followed, once the
// stray bytes were written, by another client's request; that client must
// get its own answer.
func TestBackendCannotDesyncPooledConnections(t *testing.T) {
	mb := startMisbehavingBackend(t, nil)
	tp := startProxy(t, []string{mb.url}, noObserver)
	checkNoDesync(t, tp, mb)
}

// TestBackendCannotDesyncPooledTLSConnections: the same over TLS, where
// stray bytes may also wait inside crypto/tls.
func TestBackendCannotDesyncPooledTLSConnections(t *testing.T) {
	// httptest's certificate is valid for 127.0.0.1.
	certs := httptest.NewUnstartedServer(nil)
	certs.StartTLS()
	serverConfig := certs.TLS.Clone()
	roots := x509.NewCertPool()
	roots.AddCert(certs.Certificate())
	certs.Close()

	mb := startMisbehavingBackend(t, serverConfig)
	tp := startProxy(t, []string{mb.url}, noObserver)
	tp.bal.ups[0].tls.RootCAs = roots // before the first connection
	checkNoDesync(t, tp, mb)
	if mb.conns.Load() == 0 {
		t.Fatal("the backend got no connection")
	}
}

// checkNoDesync sends each misbehaving request a few times, each followed,
// once the backend wrote its stray bytes, by another client's request.
func checkNoDesync(t *testing.T, tp *testProxy, mb *misbehavingBackend) {
	victim, attacker := newClient(), newClient()
	const tries = 6
	for _, tc := range []struct {
		method, path string
		reason       reuseRefusal
	}{
		{http.MethodGet, "/extra", refuseStrayBytes},
		{http.MethodGet, "/extra-same", refuseStrayBytes},
		{http.MethodHead, "/head", refuseBodilessWithLength},
		{http.MethodGet, "/nocontent", refuseBodilessWithLength},
		{http.MethodGet, "/nocontent-bare", refuseStrayBytes},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			refused := reuseRefused[tc.reason].Get()
			for try := range tries {
				id := fmt.Sprintf("%s-%d", tc.path[1:], try)
				strays := mb.strays.Load()
				if problem := ownAnswer(attacker, tp.url, tc.method, tc.path, id); problem != "" {
					t.Errorf("the misbehaving request itself: %s", problem)
				}
				if tc.path != "/extra-same" {
					// The stray bytes are in the proxy's socket once the
					// backend's write returned (loopback).
					if _, ok := waitUntil(2*time.Second, func() bool { return mb.strays.Load() > strays }); !ok {
						t.Fatal("the backend did not write its stray bytes")
					}
				}
				if problem := ownAnswer(victim, tp.url, http.MethodGet, "/own", "victim-"+id); problem != "" {
					t.Errorf("try %d: the next client did not get its own answer: %s", try, problem)
				}
			}
			if n := reuseRefused[tc.reason].Get() - refused; n < tries {
				t.Errorf("replaylink_upstream_reuse_refused_total{reason=%q} rose by %d, want at least %d", reuseRefusalNames[tc.reason], n, tries)
			}
		})
	}
}

// TestAmbiguousResponseLengthClosesTheConnection: a response whose framing
// fields contradict each other is read as RFC 9112 says (chunked wins), and
// its connection is not reused, so whatever the upstream meant to follow
// cannot reach another request.
func TestAmbiguousResponseLengthClosesTheConnection(t *testing.T) {
	for _, tc := range []struct{ name, response string }{
		{"CL then TE", "HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"TE then CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"},
		{"space before the colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRawBackend(t, tc.response)
			tp := startProxy(t, []string{rb.url}, noObserver)
			refused := reuseRefused[refuseAmbiguousLength].Get()
			for i := range 3 {
				resp, body := rawRequest(t, tp.addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if resp.StatusCode != 200 || body != "hello" {
					t.Errorf("request %d: %d %q, want 200 \"hello\"", i, resp.StatusCode, body)
				}
			}
			if _, ok := waitUntil(time.Second, func() bool { rb.mu.Lock(); defer rb.mu.Unlock(); return rb.conns == 3 }); !ok {
				rb.mu.Lock()
				t.Errorf("3 requests used %d upstream connections, want one each", rb.conns)
				rb.mu.Unlock()
			}
			if n := reuseRefused[refuseAmbiguousLength].Get() - refused; n != 3 {
				t.Errorf("reason ambiguous_length counted %d times, want 3", n)
			}
		})
	}
}

// TestNoContentTypeIsAdded: a response without Content-Type reaches the
// client without one; fasthttp's default (text/plain) is not made up.
func TestNoContentTypeIsAdded(t *testing.T) {
	rb := newRawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x89PNG")
	tp := startProxy(t, []string{rb.url}, nil)
	resp, body := rawRequest(t, tp.addr, "GET /image HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || body != "\x89PNG" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if ct, ok := resp.Header["Content-Type"]; ok {
		t.Errorf("the client got Content-Type %q, which the backend did not send", ct)
	}
	tp.rec.next(t)
}

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"HTTP/1.1 200 OK\r\n\r\nbody", 19},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 25},
		{"HTTP/1.1 200 OK\nA: b\n\nbody", 22},
		{"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 23},
		{"HTTP/1.1 200 OK\r\nA: b\r\n", -1},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r", -1},
		{"HTTP/1.1 200 OK\r\nA: b\r", -1},
		{"\r\n", -1},
		{"", -1},
	} {
		if got := headEnd([]byte(tc.in), 0); got != tc.want {
			t.Errorf("headEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
		// Fed in pieces with the resume offset peekHead uses, the end is
		// found at the same place.
		got := -1
		for n, from := 1, 0; n <= len(tc.in) && got < 0; n++ {
			got = headEnd([]byte(tc.in[:n]), from)
			from = max(0, n-2)
		}
		if got != tc.want {
			t.Errorf("headEnd(%q) byte by byte = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestConcurrentClientsGetOnlyTheirOwnAnswers: clients at once, each mixing
// correct requests with ones the backend answers with a body it must not
// send (HEAD, 204) or with a second response in the same write. Those are
// closed however the bytes arrive, so every client gets exactly its own
// answers.
func TestConcurrentClientsGetOnlyTheirOwnAnswers(t *testing.T) {
	mb := startMisbehavingBackend(t, nil)
	mb.delay = time.Millisecond
	tp := startProxy(t, []string{mb.url}, noObserver)
	const clients, perClient = 8, 40
	mix := []struct{ method, path string }{
		{http.MethodGet, "/own"},
		{http.MethodHead, "/head"},
		{http.MethodGet, "/own"},
		{http.MethodGet, "/nocontent"},
		{http.MethodGet, "/own"},
		{http.MethodGet, "/extra-same"},
	}
	var wg sync.WaitGroup
	problems := make(chan string, clients*perClient)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			for i := range perClient {
				m := mix[(c+i)%len(mix)]
				if p := ownAnswer(client, tp.url, m.method, m.path, fmt.Sprintf("c%d-%d", c, i)); p != "" {
					problems <- p
				}
			}
		}()
	}
	wg.Wait()
	close(problems)
	n := 0
	for p := range problems {
		if n < 10 {
			t.Error(p)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d of %d requests did not get their own answer", n, clients*perClient)
	}
}

// noObserver leaves the access events unrecorded: these tests send more
// requests than the recorder buffers.
func noObserver(o *Options) { o.Observer = nil }

// waitUntil polls cond every millisecond until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			return time.Since(start), false
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start), true
}

// TestTLSRefusalSeesBytesInsideCryptoTLS: bytes crypto/tls has decrypted
// but not handed out are invisible to a socket peek; tlsRefusal finds them
// without waiting. (What waits in the socket, a close included, is the
// peek's, see TestBackendCannotDesyncPooledTLSConnections.)
func TestTLSRefusalSeesBytesInsideCryptoTLS(t *testing.T) {
	certs := httptest.NewUnstartedServer(nil)
	certs.StartTLS()
	serverConfig := certs.TLS.Clone()
	roots := x509.NewCertPool()
	roots.AddCert(certs.Certificate())
	certs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverSide := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			err = c.(*tls.Conn).Handshake()
		}
		if err != nil {
			close(serverSide)
			return
		}
		serverSide <- c
	}()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	conn, err := dialer.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := conn.(*tls.Conn)
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	server, ok := <-serverSide
	if !ok {
		t.Fatal("the server side of the TLS connection failed")
	}
	defer server.Close()

	if _, err := server.Write([]byte("end of a response")); err != nil { // one record
		t.Fatal(err)
	}
	buf := make([]byte, len("end of a response")-3)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if r := tlsRefusal(client); r != refuseStrayBytes {
		t.Errorf("3 bytes left inside crypto/tls: %q, want stray_bytes", reuseRefusalNames[r])
	}
	// The check took one of them; read the other two.
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, buf[:2]); err != nil || string(buf[:2]) != "se" {
		t.Fatalf("the rest: %q, %v", buf[:2], err)
	}
	if r := tlsRefusal(client); r != reuseOK {
		t.Errorf("nothing left: %q, want a reusable connection", reuseRefusalNames[r])
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("the checks took %v: they must not wait", d)
	}
}
