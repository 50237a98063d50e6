package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend is an HTTP/1.1 backend that records every byte it receives,
// so a test can prove that a smuggled request never reached it. It answers
// each request it can parse with 200 "ok".
type rawBackend struct {
	URL     string
	mu      sync.Mutex
	raw     bytes.Buffer
	targets []string // method and target of each request seen
}

func startRawBackend(t testing.TB) *rawBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{URL: "http://" + ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, (*lockedWriter)(b)))
	for {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		b.mu.Lock()
		b.targets = append(b.targets, req.Method+" "+req.RequestURI)
		b.mu.Unlock()
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"); err != nil {
			return
		}
	}
}

type lockedWriter rawBackend

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.raw.Write(p)
}

func (b *rawBackend) received() (string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.raw.String(), slices.Clone(b.targets)
}

// bystander is a listener that must never get a connection: the host an
// absolute-form URI or a Host header points at instead of the upstream.
type bystander struct {
	Addr  string
	conns atomic.Int64
}

func startBystander(t testing.TB) *bystander {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &bystander{Addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			c.Close()
		}
	}()
	return b
}

// rawExchange sends raw bytes on a new connection to addr and returns the
// status codes of the responses read until the connection closes or goes
// quiet (or the first one, unless readAll), and whether the proxy closed it.
func rawExchange(t testing.TB, addr string, raw string, readAll bool) (statuses []int, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			return statuses, !timedOut
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if !readAll {
			return statuses, false
		}
	}
}

// TestHostileHTTP sends malformed and ambiguous requests over raw TCP. Each
// must get the expected answer from the proxy itself, ambiguous framing
// must close the connection, and no smuggled request, bad method or
// foreign target may ever reach the backend or another host.
func TestHostileHTTP(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	be := startRawBackend(t)
	other := startBystander(t)
	dir := t.TempDir()
	rl := startReplaylink(t, procOptions{command: "serve", args: []string{
		"--upstream", be.URL, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
	}})

	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	huge := strings.Repeat("a", 100<<10)
	manyHeaders := strings.Repeat("X-Filler: "+strings.Repeat("b", 1000)+"\r\n", 100)
	cases := []struct {
		name  string
		raw   string
		allow []int // acceptable status of the first answer; 0: no answer at all
		// mustClose: after refusing, the proxy closes the connection, so
		// bytes after the refused head are never read as a next request.
		mustClose bool
	}{
		{"CL then TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, true},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, true},
		{"duplicate differing Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhello" + smuggled, []int{400}, true},
		{"duplicate equal Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled, []int{400}, true},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 45\r\n\r\nhello" + smuggled, []int{400}, true},
		{"Content-Length with sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + smuggled, []int{400}, true},
		{"space before colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 45\r\n\r\nhello" + smuggled, []int{400}, true},
		{"TE chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, []int{400, 501}, true},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled, []int{400, 501}, true},
		{"TE folded", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled, []int{400}, true},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", []int{400}, true},
		{"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\rGET /smuggled HTTP/1.1\r\n\r\n", []int{400}, true},
		{"bare LF in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, true},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n", []int{400}, true},
		{"name with a space", "GET / HTTP/1.1\r\nHost: x\r\nX Bad: a\r\n\r\n", []int{400}, true},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, true},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n" + smuggled, []int{400}, true},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []int{400}, true},
		{"oversized request line", "GET /" + huge + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{414, 431, 400}, true},
		{"oversized headers", "GET / HTTP/1.1\r\nHost: x\r\n" + manyHeaders + "\r\n", []int{431, 400}, true},
		{"method with a bad character", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 405, 501}, true},
		{"method with a control character", "GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 405, 501}, true},
		{"empty method", " / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, true},
		{"space in the target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, true},
		// RFC 9112 lets a server serve an unknown minor or major version as
		// HTTP/1.1 (505 is optional); the framing stays unambiguous.
		{"unknown HTTP version", "GET /v99 HTTP/9.9\r\nHost: x\r\n\r\n", []int{400, 505, 200}, false},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []int{400, 405, 505, 0}, true},
		{"CONNECT elsewhere", "CONNECT " + other.Addr + " HTTP/1.1\r\nHost: " + other.Addr + "\r\n\r\n", []int{405, 400}, true},
		{"absolute-form elsewhere", "GET http://" + other.Addr + "/steal HTTP/1.1\r\nHost: " + other.Addr + "\r\n\r\n", []int{200, 400}, false},
		{"absolute-form https elsewhere", "GET https://" + other.Addr + "/steal2 HTTP/1.1\r\nHost: x\r\n\r\n", []int{200, 400}, false},
		{"Host elsewhere", "GET /steal3 HTTP/1.1\r\nHost: " + other.Addr + "\r\n\r\n", []int{200}, false},
		{"control: a plain request", "GET /control HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}, false},
		{"control: a chunked request", "POST /control-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []int{200}, false},
	}
	refused := 0
	for _, c := range cases {
		statuses, closed := rawExchange(t, rl.Listen, c.raw, c.mustClose)
		first := 0
		if len(statuses) > 0 {
			first = statuses[0]
		}
		if !slices.Contains(c.allow, first) {
			t.Errorf("%s: first answer %d (all: %v), want one of %v", c.name, first, statuses, c.allow)
		}
		if c.mustClose && (len(statuses) > 1 || !closed) {
			t.Errorf("%s: answers %v and the connection %s: after refusing, the proxy must close it", c.name, statuses,
				map[bool]string{true: "closed", false: "stayed open"}[closed])
		}
		if first >= 400 || first == 0 {
			refused++
		}
	}
	r.add("cases", len(cases))
	r.add("refused", refused)

	raw, targets := be.received()
	r.add("backend_requests", len(targets))
	for _, bad := range []string{"smuggled", "G@T", "GE\x01T", "PRI ", "CONNECT", "X-Folded", "X-Bad", "X Bad"} {
		if strings.Contains(raw, bad) {
			t.Errorf("the backend received %q; all it got:\n%s", bad, tail(raw, 4<<10))
		}
	}
	for _, want := range []string{"GET /control", "POST /control-chunked", "GET /steal3"} {
		if !slices.Contains(targets, want) {
			t.Errorf("the backend did not get the control request %q (got %q): the test's recorder is broken", want, targets)
		}
	}
	for _, tg := range targets {
		if strings.Contains(tg, "://") {
			t.Errorf("the backend got an absolute-form target %q; the proxy forwards the origin form", tg)
		}
	}
	if n := other.conns.Load(); n > 0 {
		t.Errorf("the proxy opened %d connections to a host named only by the client: an open proxy", n)
	}
}

// TestSlowlorisDoesNotStarveOthers: thousands of connections send their
// headers a byte at a time and never finish; normal requests are served
// meanwhile. The long form also waits for the proxy to close them.
func TestSlowlorisDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0)
	dir := t.TempDir()
	n := sizeInt("SLOWLORIS", 2000, 8000)
	// The slowloris connections and the load share 127.0.0.1; the
	// per-client limit alone would refuse most of them, and this test is
	// about the header timeout.
	rl := startReplaylink(t, procOptions{command: "serve", args: []string{
		"--upstream", b.URL, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
		"--max-conns-per-client", strconv.Itoa(n + 1000),
	}})
	cs := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", rl.Listen, 5*time.Second)
		if err != nil {
			t.Fatalf("slowloris connection %d: %v", i, err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		cs = append(cs, c)
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	// One goroutine adds a byte to every header each second.
	var closedByProxy atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		gone := make([]bool, len(cs))
		for {
			for i, c := range cs {
				if gone[i] {
					continue
				}
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := io.WriteString(c, "a"); err != nil {
					gone[i] = true
					closedByProxy.Add(1)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	l := newLoad(t, "r", rl.Listen)
	l.run(context.Background(), rate, sizeDuration("DURATION", 6*time.Second, 60*time.Second))
	r.add("slowloris_conns", n)
	st := l.requireAllServed(r)
	if st.max > 5*time.Second {
		t.Errorf("a request took %v with %d slowloris connections open", st.max, n)
	}
	if soak {
		// The proxy gives a client 30 s (ClientHeaderTimeout) for its head.
		waitFor(60*time.Second, func() bool { return closedByProxy.Load() == int64(n) })
		r.add("closed_by_proxy", closedByProxy.Load())
		if closedByProxy.Load() < int64(n) {
			t.Errorf("%d of %d slowloris connections still open after their header timeout", int64(n)-closedByProxy.Load(), n)
		}
	}
	cancel()
	wg.Wait()
	rl.checkMemory(r)
}
