package proxy

import (
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// A request head as browsers send it to an API, with the session in one of
// the places the proxy looks.
const benchHeaders = "Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://app.example.com/orders/42\r\n" +
	"Origin: https://app.example.com\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo\r\n" +
	"Cookie: theme=dark; _ga=GA1.1.123456789.1700000000; csrftoken=abcdef0123456789\r\n" +
	"Connection: keep-alive\r\n" +
	"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
	"X-Request-ID: 3f2c1d9e-7a1b-4c2d-9e8f-0a1b2c3d4e5f\r\n"

func BenchmarkSessionExtraction(b *testing.B) {
	token := SignSessionToken(testSecret, 7700123456789, 0, 1893456000000)
	for _, bc := range []struct {
		name, field string
		opts        SessionOptions
	}{
		{"header", "openReplaySession.id: 7700123456789\r\n", testSessions},
		{"token-unverified", "X-OpenReplay-Session-Token: " + token + "\r\n", testSessions},
		{"token-verified", "X-OpenReplay-Session-Token: " + token + "\r\n", SessionOptions{Sources: testSessions.Sources, TokenSecret: testSecret}},
		{"baggage", "baggage: userId=alice, openReplaySession.id=7700123456789\r\n", testSessions},
		{"none", "", testSessions},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := newSessionExtractor(bc.opts)
			if err != nil {
				b.Fatal(err)
			}
			raw := []byte(benchHeaders + bc.field + "\r\n")
			var ri requestInfo
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				ri.scan(raw)
				if id, _ := e.extract(&ri.sess); (id == 0) != (bc.field == "") {
					b.Fatal("wrong session")
				}
			}
		})
	}
}

func BenchmarkRequestIdentity(b *testing.B) {
	incomingID := []byte("3f2c1d9e-7a1b-4c2d-9e8f-0a1b2c3d4e5f")
	incomingTrace := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	for _, bc := range []struct {
		name      string
		id, trace []byte
	}{
		{"continue", incomingID, incomingTrace},
		{"generate", nil, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var id, tp []byte
			var tc traceContext
			b.ReportAllocs()
			for b.Loop() {
				id = appendRequestID(id[:0], bc.id)
				tc.begin(bc.trace, 1)
				tp = tc.appendTraceparent(tp[:0])
			}
			if len(tp) != traceparentLen {
				b.Fatal(string(tp))
			}
		})
	}
}

func BenchmarkRedactQuery(b *testing.B) {
	q := []byte("page=2&sort=desc&access_token=abc123&filter=open&session_id=42")
	var out []byte
	r, _ := newQueryRedactor(nil)
	b.ReportAllocs()
	for b.Loop() {
		out = r.appendRedacted(out[:0], q)
	}
}

// BenchmarkProxyRequest is a whole GET over loopback: fasthttp client ->
// proxy -> fasthttp backend, with a session header. The allocations include
// all three parties.
func BenchmarkProxyRequest(b *testing.B) {
	body := make([]byte, 1024)
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go backendSrv.Serve(backendLn) //nolint:errcheck
	defer backendSrv.Shutdown()    //nolint:errcheck

	p, err := New(testOptions("http://" + backendLn.Addr().String()))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)                //nolint:errcheck
	defer p.Shutdown(b.Context()) //nolint:errcheck

	client := &fasthttp.HostClient{Addr: ln.Addr().String(), ReadTimeout: 5 * time.Second}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + ln.Addr().String() + "/api/orders?page=2&token=secret")
	req.Header.Set("openReplaySession.id", "7700123456789")
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != len(body) {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}

// BenchmarkReuseChecks measures what the proxy does per request so that a
// pooled connection never carries bytes meant for someone else (reuse.go):
// the peek at an idle socket (one recvfrom syscall) and the scan of the
// response head for its framing fields.
func BenchmarkReuseChecks(b *testing.B) {
	b.Run("peek", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				defer c.Close()
				var one [1]byte
				_, _ = c.Read(one[:]) // until the benchmark closes
			}
		}()
		var d dialer
		c, err := d.dial(ln.Addr().String(), 0)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if r := idleRefusal(c); r != reuseOK {
				b.Fatalf("an idle connection was refused: %s", reuseRefusalNames[r])
			}
		}
	})
	b.Run("scan-head", func(b *testing.B) {
		head := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1024\r\n" +
			"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nCache-Control: no-store\r\nVary: Origin\r\n\r\n")
		b.ReportAllocs()
		b.SetBytes(int64(len(head)))
		for b.Loop() {
			if headEnd(head, 0) != len(head) || scanFraming(head) != framingContentLength|framingNonZeroLength {
				b.Fatal("wrong framing")
			}
		}
	})
}

// BenchmarkStalledUploadMemory measures what a stalled upload costs: each
// connection announces a 10 MB body, sends 70 KiB and stops, the way one
// client filled the upstream connection cap in the security issue. An op
// opens stalledPerOp such uploads through the proxy to a backend that takes
// what arrives, waits until all of it reached the backend (the proxy is
// then blocked reading the client), measures the live heap and goroutine
// stacks, and closes them. live-B/conn is what one stalled upload holds
// (the benchmark's own two sockets per upload, under 1 KiB, included);
// B/op and allocs/op are for the whole op.
func BenchmarkStalledUploadMemory(b *testing.B) {
	const stalledPerOp = 32
	const sent = 70 << 10
	be := startTakingBackend(b)
	p, err := New(testOptions("http://" + be.addr))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)                //nolint:errcheck
	defer p.Shutdown(b.Context()) //nolint:errcheck
	upload := []byte("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n" + strings.Repeat("x", sent))

	var perConn float64
	b.ReportAllocs()
	for b.Loop() {
		before := liveBytes()
		received := be.received.Load()
		conns := make([]net.Conn, 0, stalledPerOp)
		for range stalledPerOp {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := c.Write(upload); err != nil {
				b.Fatal(err)
			}
		}
		// Each upload reaches the backend but for what the proxy's upstream
		// writer holds until more comes (at most its 16 KiB); then nothing
		// moves any more.
		want := received + stalledPerOp*int64(len(upload)-16<<10)
		if !waitFor(10*time.Second, func() bool { return be.received.Load() >= want && p.inflight.Load() == stalledPerOp }) {
			b.Fatalf("the backend got %d of at least %d bytes", be.received.Load()-received, want-received)
		}
		for last := int64(-1); last != be.received.Load(); time.Sleep(20 * time.Millisecond) {
			last = be.received.Load()
		}
		perConn += float64(liveBytes()-before) / stalledPerOp
		for _, c := range conns {
			c.Close()
		}
		if !waitFor(10*time.Second, func() bool { return p.inflight.Load() == 0 }) {
			b.Fatal("the proxy did not finish the closed uploads")
		}
	}
	b.ReportMetric(perConn/float64(b.N), "live-B/conn")
}

// liveBytes is the live heap plus goroutine stacks after a collection.
func liveBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// takingBackend accepts connections and reads whatever arrives on them
// with one goroutine for all, so that it costs next to nothing per
// connection; it never answers.
type takingBackend struct {
	addr     string
	received atomic.Int64
}

func startTakingBackend(b *testing.B) *takingBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tb := &takingBackend{addr: ln.Addr().String()}
	accepted := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	go func() {
		var conns []net.Conn
		buf := make([]byte, 64<<10)
		for {
			select {
			case c, ok := <-accepted:
				if !ok {
					for _, c := range conns {
						c.Close()
					}
					return
				}
				conns = append(conns, c)
			default:
			}
			if len(conns) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			open := conns[:0]
			for _, c := range conns {
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Microsecond))
				n, err := c.Read(buf)
				tb.received.Add(int64(n))
				if err != nil && !isTimeout(err) {
					c.Close()
					continue
				}
				open = append(open, c)
			}
			conns = open
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return tb
}
