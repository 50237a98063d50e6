package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOneClientCannotExhaustUpstreamConnections: one client address opens
// twice its share of connections, each announcing a 10 MB upload, sending
// 70 KiB and stalling, as in the security issue (there 4,200 connections
// filled the 4,096 upstream connections and a normal GET got 503 after 5 s).
// With the upstream cap set small (30) and the per-client limit at 20, the
// connections over the limit are refused and counted, a GET from another
// address is served at once, and the stalled uploads, like a slow upload
// trickling a byte every half second, are cut when their body timeout is
// over. Addresses 127.0.0.2 and .3 are other clients (Linux routes 127/8
// to the loopback interface).
func TestOneClientCannotExhaustUpstreamConnections(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0)
	dir := t.TempDir()
	const perClient, attackConns, bodyTimeout = 20, 40, 3 * time.Second
	rl := startReplaylink(t, procOptions{command: "serve", args: []string{
		"--upstream", b.URL, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
		"--max-conns-per-upstream", "30", "--max-conns-per-client", fmt.Sprint(perClient),
		"--client-body-timeout", bodyTimeout.String(), "--client-body-min-rate", "1MiB",
	}})
	upload := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + strings.Repeat("u", 70<<10)

	start := time.Now()
	attack := make([]net.Conn, 0, attackConns)
	defer func() {
		for _, c := range attack {
			c.Close()
		}
	}()
	for range attackConns {
		c, err := net.DialTimeout("tcp", rl.Listen, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, upload) // a refused connection fails here or later; either is fine
		attack = append(attack, c)
	}
	r.add("attack_conns", attackConns)

	// Another client is served at once.
	victim := clientFrom(t, "127.0.0.2")
	getStart := time.Now()
	resp, err := victim.Get("http://" + rl.Listen + "/item")
	getTook := time.Since(getStart)
	r.add("victim_get_ms", getTook.Milliseconds())
	if err != nil {
		t.Fatalf("a GET from another address while one client stalls uploads: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "ok ") {
		t.Errorf("a GET from another address got %d %q after %v, want the backend's 200", resp.StatusCode, body, getTook)
	}
	// Starved, it would wait for a stalled upload to be cut at the body
	// timeout; half of it leaves room for a loaded machine.
	if getTook > bodyTimeout/2 {
		t.Errorf("a GET from another address took %v, want well under the body timeout (%v): it waited for a stalled upload's connection", getTook, bodyTimeout)
	}
	if time.Since(start) > bodyTimeout {
		t.Fatalf("the attack and the GET took %v, longer than the body timeout: the test proves nothing", time.Since(start))
	}
	m := rl.metrics()
	refused := m[`replaylink_rejected_connections_total{reason="per_client_limit"}`]
	r.add("refused_conns", refused)
	if refused != attackConns-perClient {
		t.Errorf("%v connections refused as over the per-client limit, want %d", refused, attackConns-perClient)
	}

	// A slow upload from a third address, a byte every 500 ms (far inside
	// the idle timeout), is cut once its body timeout is over.
	slow, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, Timeout: 5 * time.Second}).Dial("tcp", rl.Listen)
	if err != nil {
		t.Fatalf("dial from 127.0.0.3: %v", err)
	}
	defer slow.Close()
	slowStart := time.Now()
	io.WriteString(slow, upload)
	answer := make(chan int, 1)
	go func() {
		slow.SetReadDeadline(time.Now().Add(4 * bodyTimeout))
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err != nil {
			answer <- 0
			return
		}
		answer <- resp.StatusCode
	}()
	status := -1
	for range 4 * int(bodyTimeout/(500*time.Millisecond)) {
		select {
		case status = <-answer:
		case <-time.After(500 * time.Millisecond):
			io.WriteString(slow, "u")
			continue
		}
		break
	}
	slowTook := time.Since(slowStart)
	r.add("slow_upload_cut_after_s", seconds(slowTook))
	if status != http.StatusRequestTimeout {
		t.Errorf("a slow upload got %d after %v, want 408 after about %v", status, slowTook, bodyTimeout)
	} else if slowTook < bodyTimeout-500*time.Millisecond || slowTook > bodyTimeout+3*time.Second {
		t.Errorf("a slow upload was cut after %v, want about %v", slowTook, bodyTimeout)
	}

	// The stalled uploads were cut as well: each accepted one has its 408
	// (or is closed), none is still open.
	stillOpen := 0
	for _, c := range attack {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && isTimeoutErr(err) {
			stillOpen++
		}
	}
	r.add("stalled_still_open", stillOpen)
	if stillOpen > 0 {
		t.Errorf("%d stalled uploads still open %v after they started; the body timeout is %v", stillOpen, time.Since(start), bodyTimeout)
	}
	cut := rl.metrics()[`replaylink_rejected_requests_total{reason="body_timeout"}`]
	r.add("body_timeouts", cut)
	if cut < perClient+1 {
		t.Errorf("%v uploads counted as cut by the body timeout, want %d (the stalled ones and the slow one)", cut, perClient+1)
	}
	rl.checkMemory(r)
}

// clientFrom is an HTTP client whose connections come from the local
// address ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
