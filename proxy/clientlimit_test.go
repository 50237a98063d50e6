package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnectionsPerClientAreLimited: connections beyond MaxConnsPerClient
// from one address get 429 and are closed, are counted, and free their
// slot again once closed; another address is not affected.
func TestConnectionsPerClientAreLimited(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tp := startProxy(t, []string{be.URL}, func(o *Options) { o.MaxConnsPerClient = 3; o.Observer = nil })
	refused := rejectedConns[rejectPerClientLimit].Get()

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The proxy accepts in the background: the fourth is refused once the
	// three above were counted.
	over, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = over.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	over.Close()
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
		t.Fatalf("the fourth connection from one address: %v %v, want 429 and close", resp, err)
	}
	if n := rejectedConns[rejectPerClientLimit].Get() - refused; n != 1 {
		t.Errorf(`replaylink_rejected_connections_total{reason="per_client_limit"} rose by %d, want 1`, n)
	}

	// Another address is served meanwhile (Linux routes all of 127/8 to lo).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	other, err := d.Dial("tcp", tp.addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	if status := roundTrip(t, other); status != 200 {
		t.Errorf("a client at another address got %d", status)
	}
	other.Close()

	// Closing one frees its slot.
	held[0].Close()
	held = held[1:]
	var status int
	if _, ok := waitUntil(2*time.Second, func() bool {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		status = roundTrip(t, c)
		return status == 200
	}); !ok {
		t.Errorf("a connection after one of three closed got %d, want 200", status)
	}
}

// roundTrip sends a GET on c and returns the status.
func roundTrip(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSlowUploadIsCutAfterTheBodyTimeout: a body that keeps trickling, each
// byte well within IdleTimeout, is cut once ClientBodyTimeout (extended by
// what arrived at ClientBodyMinRate) is over: 408, the connection closed,
// the upstream request aborted and counted. A body sent at a fair rate for
// longer than the timeout is not cut.
func TestSlowUploadIsCutAfterTheBodyTimeout(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %d", n)
	})
	tp := startProxy(t, []string{be.URL}, func(o *Options) {
		o.ClientBodyTimeout = 500 * time.Millisecond
		o.ClientBodyMinRate = 64 << 10
		o.IdleTimeout = 10 * time.Second
		o.Observer = nil
	})
	cut := rejectedRequests[rejectBodyTimeout].Get()

	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n%s", strings.Repeat("x", 32<<10))
	// 32 KiB at 64 KiB/s buys half a second more: the cut is due about 1 s
	// after the headers. A byte every 100 ms keeps the connection far from
	// its idle timeout.
	answer := make(chan *http.Response, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			resp = nil
		}
		answer <- resp
	}()
	var resp *http.Response
trickle:
	for range 80 {
		select {
		case resp = <-answer:
			break trickle
		case <-time.After(100 * time.Millisecond):
			_, _ = io.WriteString(c, "x")
		}
	}
	took := time.Since(start)
	if resp == nil {
		t.Fatalf("no answer %v after the upload started; want 408 after about 1 s", took)
	}
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("a trickling upload got %d (close %v), want 408 and close", resp.StatusCode, resp.Close)
	}
	if took < 800*time.Millisecond || took > 3*time.Second {
		t.Errorf("the upload was cut after %v, want about 1 s (timeout plus 32 KiB at 64 KiB/s)", took)
	}
	if n := rejectedRequests[rejectBodyTimeout].Get() - cut; n != 1 {
		t.Errorf(`replaylink_rejected_requests_total{reason="body_timeout"} rose by %d, want 1`, n)
	}

	// 1 MiB at about 512 KiB/s takes 2 s, four times the timeout: the
	// min rate keeps extending it.
	fair, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fair.Close()
	const size = 1 << 20
	fmt.Fprintf(fair, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
	piece := strings.Repeat("y", 16<<10)
	for sent := 0; sent < size; sent += len(piece) {
		if _, err := io.WriteString(fair, piece); err != nil {
			t.Fatalf("the fair upload was cut after %d bytes: %v", sent, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	_ = fair.SetReadDeadline(time.Now().Add(5 * time.Second))
	fresp, err := http.ReadResponse(bufio.NewReader(fair), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(fresp.Body)
	if fresp.StatusCode != 200 || string(body) != fmt.Sprintf("got %d", size) {
		t.Errorf("a fair upload longer than the timeout got %d %q", fresp.StatusCode, body)
	}
}
