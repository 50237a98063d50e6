package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestDeadUpstreamIs502(t *testing.T) {
	tp := startProxy(t, []string{deadUpstream(t)}, nil)
	before := upstreamErrors[KindRefused].Get()
	resp, body := get(t, tp.url+"/x", nil)
	if resp.StatusCode != 502 || !strings.HasPrefix(body, "502 Bad Gateway: the upstream refused the connection\n") ||
		!strings.Contains(body, resp.Header.Get("X-Request-ID")) {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if upstreamErrors[KindRefused].Get() != before+1 {
		t.Error("refused connection not counted")
	}
	ev := tp.rec.next(t)
	if ev.Status != 502 || string(ev.ProxyError) != "upstream refused connection" || len(ev.Upstream) != 0 {
		t.Errorf("event %+v", ev)
	}
}

func TestResponseHeaderTimeoutIs504(t *testing.T) {
	tp := startProxy(t, []string{silentUpstream(t)}, func(o *Options) { o.ResponseHeaderTimeout = 200 * time.Millisecond })
	start := time.Now()
	resp, body := get(t, tp.url+"/slow", nil)
	if resp.StatusCode != 504 || !strings.Contains(body, "did not answer in time") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("504 took %v", time.Since(start))
	}
	if ev := tp.rec.next(t); ev.Status != 504 || string(ev.ProxyError) != "upstream response header timeout" {
		t.Errorf("event %+v", ev)
	}
}

// TestSlowBodyIsNotCutByHeaderTimeout: the response-header timeout must not
// limit a body that keeps streaming.
func TestSlowBodyIsNotCutByHeaderTimeout(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 4; i++ {
			fmt.Fprintf(w, "tick %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	tp := startProxy(t, []string{be.URL}, func(o *Options) { o.ResponseHeaderTimeout = 150 * time.Millisecond })
	resp, body := get(t, tp.url, nil)
	if resp.StatusCode != 200 || strings.Count(body, "tick") != 4 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestClassifyErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		dial bool
		want ErrorKind
	}{
		{refused, true, KindRefused},
		{&net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}, true, KindUnreachable},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, true, KindConnectTimeout},
		{io.EOF, false, KindReset},
		{timeoutErr{}, false, KindHeaderTimeout},
		{fmt.Errorf("cannot find whitespace in the first line of response"), false, KindProtocol},
	} {
		var got ErrorKind
		if tc.dial {
			got = classifyDialError(tc.err)
		} else {
			got = classifyExchangeError(tc.err)
		}
		if got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
	if KindConnectTimeout.Status() != 504 || KindHeaderTimeout.Status() != 504 || KindReset.Status() != 502 || !KindRefused.Retryable() || KindReset.Retryable() {
		t.Error("kind semantics changed")
	}
}

// TestRetryOnRefused: idempotent requests move to the next upstream when
// the connection is refused; a POST is not retried.
func TestRetryOnRefused(t *testing.T) {
	var hits atomic.Int64
	live := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "live")
	})
	tp := startProxy(t, []string{deadUpstream(t), live.URL}, func(o *Options) { o.MaxFails = 1000 })
	for i := 0; i < 4; i++ {
		if resp, body := get(t, tp.url+"/", nil); resp.StatusCode != 200 || body != "live" {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
		tp.rec.next(t)
	}
	statuses := map[int]int{}
	for i := 0; i < 2; i++ {
		resp, err := http.Post(tp.url+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
		tp.rec.next(t)
	}
	if statuses[502] != 1 || statuses[200] != 1 {
		t.Errorf("two POSTs over dead+live upstreams got %v, want one 502 and one 200", statuses)
	}
}

func TestPassiveHealth(t *testing.T) {
	live := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	dead := deadUpstream(t)
	tp := startProxy(t, []string{dead, live.URL}, func(o *Options) {
		o.MaxFails = 2
		o.FailCooldown = time.Minute
	})
	for i := 0; i < 6; i++ {
		if resp, _ := get(t, tp.url, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		tp.rec.next(t)
	}
	deadUp := tp.bal.ups[0]
	if deadUp.usable(time.Now().UnixNano()) {
		t.Fatal("an upstream that refused twice is not in cool-down")
	}
	if deadUp.healthy.Get() != 0 {
		t.Error("replaylink_upstream_healthy not 0 during cool-down")
	}
	retries := upstreamRetries.Get()
	for i := 0; i < 4; i++ {
		get(t, tp.url, nil)
		tp.rec.next(t)
	}
	if upstreamRetries.Get() != retries {
		t.Error("requests still went to the upstream in cool-down")
	}
	if !tp.Ready() {
		t.Error("not ready although one upstream answers")
	}

	only := startProxy(t, []string{deadUpstream(t)}, nil)
	if only.Ready() {
		t.Error("ready with a dead upstream")
	}
	// With every upstream in cool-down, requests still try them.
	for _, u := range only.bal.ups {
		u.downUntil.Store(time.Now().Add(time.Hour).UnixNano())
	}
	if resp, _ := get(t, only.url, nil); resp.StatusCode != 502 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestHealthRecovers: a response from an upstream in cool-down ends it.
func TestHealthRecovers(t *testing.T) {
	live := backend(t, func(w http.ResponseWriter, r *http.Request) {})
	tp := startProxy(t, []string{live.URL}, nil)
	u := tp.bal.ups[0]
	u.downUntil.Store(time.Now().Add(time.Hour).UnixNano())
	u.healthy.Set(0)
	if resp, _ := get(t, tp.url, nil); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if !u.usable(time.Now().UnixNano()) || u.healthy.Get() != 1 {
		t.Error("still in cool-down after a response")
	}
}

// TestStaleKeepAliveConnections: the backend drops idle connections quickly;
// requests after the drop must not fail, with or without a body.
func TestStaleKeepAliveConnections(t *testing.T) {
	be := backendWith(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	tp := startProxy(t, []string{be.URL}, nil)
	for i := 0; i < 3; i++ {
		resp, err := http.Post(tp.url, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "payload" {
			t.Fatalf("POST %d after idle: %d %q", i, resp.StatusCode, b)
		}
		if resp, _ := get(t, tp.url, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %d after idle: %d", i, resp.StatusCode)
		}
		time.Sleep(600 * time.Millisecond)
	}
}

func TestWebSocketPassThrough(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") ||
			r.Header.Get("X-Request-ID") == "" || r.Header.Get("X-OpenReplay-Session-Id") != "42" {
			http.Error(w, "not an upgrade: "+fmt.Sprint(r.Header), http.StatusBadRequest)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhello-from-upstream")
		brw.Flush()
		_, _ = io.Copy(c, brw) // echo until the client closes
	})
	tp := startProxy(t, []string{be.URL}, nil)

	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nopenReplaySession.id: 42\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake answer %d %v", resp.StatusCode, resp.Header)
	}
	greeting := make([]byte, len("hello-from-upstream"))
	if _, err := io.ReadFull(br, greeting); err != nil || string(greeting) != "hello-from-upstream" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	for _, msg := range []string{"ping-1", "ping-2"} {
		fmt.Fprint(c, msg)
		echo := make([]byte, len(msg))
		if _, err := io.ReadFull(br, echo); err != nil || string(echo) != msg {
			t.Fatalf("echo %q, %v", echo, err)
		}
	}
	c.Close()
	ev := tp.rec.next(t)
	if ev.Status != 101 || ev.BytesIn != 12 || ev.BytesOut != int64(len("hello-from-upstream")+12) || ev.Session != 42 {
		t.Errorf("event status %d in %d out %d session %d", ev.Status, ev.BytesIn, ev.BytesOut, ev.Session)
	}
}

func TestUpgradeRefusedByUpstream(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websockets here", http.StatusUpgradeRequired)
	})
	tp := startProxy(t, []string{be.URL}, nil)
	resp, body := rawRequest(t, tp.addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != 426 || body != "no websockets here\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if ev := tp.rec.next(t); ev.Status != 426 {
		t.Errorf("event status %d", ev.Status)
	}
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			close(started)
			<-r.Context().Done()
			return
		}
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})

	// A slow request in flight completes during the grace period.
	tp := startProxy(t, []string{be.URL}, nil)
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(tp.url + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := <-result; got != "done" {
		t.Errorf("in-flight request got %q", got)
	}
	if tp.Ready() {
		t.Error("ready after Shutdown")
	}
	if _, err := net.DialTimeout("tcp", tp.addr, time.Second); err == nil {
		t.Error("still accepting connections after Shutdown")
	}
	if ev := tp.rec.next(t); ev.Status != 200 {
		t.Errorf("event status %d", ev.Status)
	}

	// A request that outlives the grace period is cut, and still reported.
	tp2 := startProxy(t, []string{be.URL}, nil)
	go func() {
		resp, err := http.Get(tp2.url + "/hang")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := tp2.Shutdown(ctx2); err == nil {
		t.Error("Shutdown with a hanging request returned nil")
	}
	if ev := tp2.rec.next(t); ev.Status < 499 {
		t.Errorf("cut request reported as %d", ev.Status)
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// panickyObserver fails on the first request only.
type panickyObserver struct{ calls atomic.Int64 }

func (o *panickyObserver) RequestStarted(*RequestStart) {
	if o.calls.Add(1) == 1 {
		panic("observer bug")
	}
}
func (o *panickyObserver) RequestFinished(ev *AccessEvent) { ev.Release() }

func TestHandlerPanicDoesNotTakeTheProxyDown(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	obs := &panickyObserver{}
	tp := startProxy(t, []string{be.URL}, func(o *Options) { o.Observer = obs })
	if resp, _ := get(t, tp.url, nil); resp.StatusCode != 502 {
		t.Errorf("request during a panic: %d", resp.StatusCode)
	}
	if resp, body := get(t, tp.url, nil); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("request after a panic: %d %q", resp.StatusCode, body)
	}
	if n := tp.inflight.Load(); n != 0 {
		t.Errorf("%d requests still counted in flight", n)
	}
}

// Readiness polls while the backend is still starting (as Kubernetes and
// `replaylink run` do) must not put it into cool-down: once it listens, the
// proxy is ready and serves at once, not a cool-down later.
func TestReadinessProbesDoNotCoolDownAStartingBackend(t *testing.T) {
	url := deadUpstream(t)
	tp := startProxy(t, []string{url}, func(o *Options) {
		o.MaxFails = 1
		o.FailCooldown = time.Hour
	})
	for i := 0; i < 5; i++ {
		if tp.Ready() {
			t.Fatal("ready before the backend listens")
		}
	}
	if !tp.bal.ups[0].usable(time.Now().UnixNano()) {
		t.Fatal("refused readiness probes put the upstream into cool-down")
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	ln.Close()
	tp.bal.ups[0].downUntil.Store(time.Now().Add(time.Hour).UnixNano())
	ln, err = net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer ln.Close()
	if !tp.Ready() {
		t.Fatal("not ready although the backend accepts connections")
	}
	if !tp.bal.ups[0].usable(time.Now().UnixNano()) {
		t.Error("an accepted probe did not end the cool-down")
	}
}
