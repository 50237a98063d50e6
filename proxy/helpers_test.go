package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps copies of everything it is told.
type recorder struct {
	mu     sync.Mutex
	starts []RequestStart
	events chan AccessEvent
}

var _ Observer = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{events: make(chan AccessEvent, 256)} }

func (r *recorder) RequestStarted(s *RequestStart) {
	c := *s
	c.Method, c.Path, c.RequestID = bytes.Clone(s.Method), bytes.Clone(s.Path), bytes.Clone(s.RequestID)
	r.mu.Lock()
	r.starts = append(r.starts, c)
	r.mu.Unlock()
}

func (r *recorder) RequestFinished(ev *AccessEvent) {
	c := *ev
	for _, f := range []*[]byte{&c.Method, &c.Path, &c.Query, &c.Upstream, &c.ClientIP, &c.UserAgent, &c.RequestID, &c.ProxyError, &c.ErrorBody} {
		*f = bytes.Clone(*f)
	}
	ev.Release()
	r.events <- c
}

// next waits for the next finished request.
func (r *recorder) next(t *testing.T) AccessEvent {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no access event within 10s")
	}
	return AccessEvent{}
}

// startedFor returns the RequestStart paired with seq.
func (r *recorder) startedFor(t *testing.T, seq uint64) RequestStart {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.starts {
		if s.Seq == seq {
			return s
		}
	}
	t.Fatalf("no RequestStart with seq %d", seq)
	return RequestStart{}
}

// testProxy is a proxy listening on a loopback port.
type testProxy struct {
	*Proxy
	addr string // host:port
	url  string // http://host:port
	rec  *recorder
}

// testSessions are config's default session sources.
var testSessions = SessionOptions{Sources: []ConfiguredSource{LookInHeader, LookInToken, LookInBaggage}}

// testOptions are the options as config's defaults make them, for
// upstreams: tests of something else start from them and set what they
// are about.
func testOptions(upstreams ...string) Options {
	return Options{
		Upstreams:             upstreams,
		ConnectTimeout:        5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleTimeout:           90 * time.Second,
		ClientHeaderTimeout:   30 * time.Second,
		MaxHeaderBytes:        64 << 10,
		ClientBodyTimeout:     60 * time.Second,
		ClientBodyMinRate:     16 << 10,
		MaxConnsPerClient:     1024,
		MaxConnsPerUpstream:   4096,
		MaxFails:              3,
		FailCooldown:          10 * time.Second,
		CORSAddSessionHeader:  true,
		ErrorBodyBytes:        8 << 10,
		Sessions:              testSessions,
	}
}

// startProxy starts a proxy in front of upstreams; fill adjusts the options.
func startProxy(t *testing.T, upstreams []string, fill func(*Options)) *testProxy {
	t.Helper()
	rec := newRecorder()
	opts := testOptions(upstreams...)
	opts.Observer = rec
	opts.ConnectTimeout, opts.ResponseHeaderTimeout, opts.IdleTimeout = 2*time.Second, 5*time.Second, 10*time.Second
	if fill != nil {
		fill(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
		<-done
	})
	return &testProxy{Proxy: p, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), rec: rec}
}

// backend starts a net/http server: a different HTTP implementation than
// the proxy's, on a real loopback socket.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	return backendWith(t, h, nil)
}

// backendWith is backend with the server configured before it starts.
func backendWith(t *testing.T, h http.HandlerFunc, configure func(*http.Server)) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(s.Config)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// deadUpstream returns the URL of a loopback port nothing listens on, so
// connecting is refused.
func deadUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// silentUpstream accepts connections and reads from them but never answers.
func silentUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

// rawBackend records each request exactly as it arrived on the wire and
// answers it with a canned response.
type rawBackend struct {
	url      string
	mu       sync.Mutex
	heads    []string // request line and headers, as received
	bodies   []string
	requests int
	conns    int
}

func newRawBackend(t *testing.T, response string) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{url: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var open sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.mu.Lock()
			rb.conns++
			rb.mu.Unlock()
			open.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var raw bytes.Buffer
				br := bufio.NewReader(io.TeeReader(c, &raw))
				for {
					raw.Reset()
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, err := io.ReadAll(req.Body)
					if err != nil {
						return
					}
					head := raw.String()
					if i := strings.Index(head, "\r\n\r\n"); i >= 0 {
						head = head[:i+2]
					}
					rb.mu.Lock()
					rb.heads = append(rb.heads, head)
					rb.bodies = append(rb.bodies, string(body))
					rb.requests++
					rb.mu.Unlock()
					if _, err := io.WriteString(c, response); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return rb
}

func (rb *rawBackend) lastHead(t *testing.T) string {
	t.Helper()
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if len(rb.heads) == 0 {
		t.Fatal("the backend received no request")
	}
	return rb.heads[len(rb.heads)-1]
}

func (rb *rawBackend) count() int {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.requests
}

// rawRequest sends raw bytes to addr and returns the parsed response with
// its body read.
func rawRequest(t *testing.T, addr, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", request, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// headerValues returns the values of name (any case) in a raw request head.
func headerValues(head, name string) []string {
	var out []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}
