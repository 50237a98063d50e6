package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ left int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = byte('a' + (r.left-int64(i))%26)
	}
	r.left -= int64(len(p))
	return len(p), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, &patternReader{left: n})
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// TestLargeBodiesStream sends a large upload and download through the proxy
// and checks that the process allocated far less than the body size: no
// side buffers a whole body.
func TestLargeBodiesStream(t *testing.T) {
	const size = 64 << 20
	want := patternSum(size)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			var s [32]byte
			h.Sum(s[:0])
			fmt.Fprintf(w, "%d %v", n, s == want)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		_, _ = io.Copy(w, &patternReader{left: size})
	})
	tp := startProxy(t, []string{be.URL}, nil)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, tp.url+"/upload", io.NopCloser(&patternReader{left: size}))
		if !chunked {
			req.ContentLength = size
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf("%d true", size) {
			t.Fatalf("upload (chunked=%v) arrived as %q", chunked, body)
		}
		if ev := tp.rec.next(t); ev.BytesIn != size {
			t.Errorf("event BytesIn = %d, want %d", ev.BytesIn, size)
		}
	}

	resp, err := http.Get(tp.url + "/download")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	var got [32]byte
	h.Sum(got[:0])
	if err != nil || n != size || got != want || resp.ContentLength != size {
		t.Fatalf("download: %d bytes (Content-Length %d), err %v, intact %v", n, resp.ContentLength, err, got == want)
	}
	if ev := tp.rec.next(t); ev.BytesOut != size || ev.Status != 200 {
		t.Errorf("event BytesOut = %d status %d", ev.BytesOut, ev.Status)
	}

	runtime.ReadMemStats(&after)
	// Client, backend and proxy together moved 3 x 64 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
		t.Errorf("moving 192 MiB of bodies allocated %d MiB: something buffers whole bodies", alloc>>20)
	}
}

// TestServerSentEventsFlow checks that each event reaches the client while
// the upstream is still holding the stream open.
func TestServerSentEventsFlow(t *testing.T) {
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			fl.Flush()
			select {
			case <-next:
			case <-time.After(5 * time.Second):
				return
			}
		}
	})
	tp := startProxy(t, []string{be.URL}, nil)
	resp, err := http.Get(tp.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		next <- struct{}{} // only now does the backend send the next event
	}
	if ev := tp.rec.next(t); ev.Status != 200 || ev.BytesOut == 0 {
		t.Errorf("event %+v", ev)
	}
}

func TestChunkedUploadWithSmallBodyIsForwardedWithLength(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	tp := startProxy(t, []string{rb.url}, nil)
	resp, _ := rawRequest(t, tp.addr, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if rb.bodies[0] != "abcde" {
		t.Errorf("body %q", rb.bodies[0])
	}
	head := rb.lastHead(t)
	if te, cl := headerValues(head, "Transfer-Encoding"), headerValues(head, "Content-Length"); len(te)+len(cl) != 1 {
		t.Errorf("framing upstream: TE %q CL %q", te, cl)
	}
}

func TestHeadKeepsContentLength(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		if r.Method != http.MethodHead {
			_, _ = w.Write(make([]byte, 1234))
		}
	})
	tp := startProxy(t, []string{be.URL}, nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ { // twice on one connection: no stray body bytes
		fmt.Fprint(c, "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != 1234 {
			t.Errorf("HEAD Content-Length %d", resp.ContentLength)
		}
	}
}

func TestErrorBodyIsTeed(t *testing.T) {
	long := strings.Repeat("Traceback line\n", 1000)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(500)
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, long)
			zw.Close()
			return
		}
		w.WriteHeader(503)
		_, _ = io.WriteString(w, long)
	})
	tp := startProxy(t, []string{be.URL}, func(o *Options) { o.ErrorBodyBytes = 100 })

	resp, body := get(t, tp.url+"/plain", nil)
	if resp.StatusCode != 503 || body != long {
		t.Fatalf("client got %d and %d bytes", resp.StatusCode, len(body))
	}
	ev := tp.rec.next(t)
	if string(ev.ErrorBody) != long[:100] || ev.BytesOut != int64(len(long)) {
		t.Errorf("ErrorBody %q, BytesOut %d", ev.ErrorBody, ev.BytesOut)
	}

	req, _ := http.NewRequest(http.MethodGet, tp.url+"/gzip", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ev = tp.rec.next(t)
	if ev.Status != 500 || !bytes.HasPrefix(ev.ErrorBody, []byte("Traceback line\n")) || len(ev.ErrorBody) > 100 {
		t.Errorf("gzip ErrorBody %q", ev.ErrorBody)
	}

	resp, _ = get(t, tp.url+"/ok-but-backend-says-503", nil)
	_ = resp
	if ev := tp.rec.next(t); len(ev.ErrorBody) == 0 {
		t.Error("5xx without capture")
	}
}

// TestClientGoneIs499 closes the client connection in the middle of a
// streamed response.
func TestClientGoneIs499(t *testing.T) {
	release := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		for i := 0; i < 100; i++ {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	})
	tp := startProxy(t, []string{be.URL}, nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	close(release)
	ev := tp.rec.next(t)
	if ev.Status != StatusClientClosedRequest || string(ev.ProxyError) != "client went away" {
		t.Errorf("event status %d error %q", ev.Status, ev.ProxyError)
	}
}
