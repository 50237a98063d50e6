package faults

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIngestRefusesWebPages: any web page can send a POST to the admin
// listener on 127.0.0.1 (fetch with mode no-cors needs no permission). Such
// requests, carrying a line with a session marker, must be refused and
// their lines never reach a document; programs that send a non-simple
// Content-Type, and the listener's own origin, still get in.
func TestIngestRefusesWebPages(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0)
	dir := t.TempDir()
	out := filepath.Join(dir, "docs.ndjson")
	in := startReplaylink(t, procOptions{command: "serve", args: []string{"--upstream", b.URL,
		"--spool-dir", filepath.Join(dir, "spool"), "--output", out, "--flush-interval", "200ms"}})

	const session = "7770001"
	attacks := []struct {
		name        string
		contentType string
		header      map[string]string
		want        int
		answerHas   string
	}{
		// What Chrome and Firefox send for fetch(url, {method: "POST", mode: "no-cors", body: "..."}).
		{"cross-site no-cors", "text/plain;charset=UTF-8", map[string]string{
			"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403, "another origin"},
		// A browser without Sec-Fetch-* still sends Origin with a POST.
		{"cross-site, old browser", "text/plain", map[string]string{"Origin": "https://evil.example"}, 403, "another origin"},
		// A page on another port of this host is same-site, not same-origin.
		{"same-site page", "application/x-ndjson", map[string]string{
			"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}, 403, "another origin"},
		// Should a browser leave out Origin and Sec-Fetch-*, the types a
		// page may send without a preflight are refused all the same.
		{"no-cors text/plain without Origin", "text/plain;charset=UTF-8", nil, 415, "Content-Type: application/x-ndjson"},
		{"no-cors Blob without a type", "", nil, 415, "no Content-Type"},
		{"no-cors form", "application/x-www-form-urlencoded", nil, 415, "curl -H 'Content-Type: application/x-ndjson' --data-binary"},
	}
	for i, a := range attacks {
		line := "[openReplaySession.id=" + session + "] attack-line-" + string(rune('a'+i)) + " pushed by a web page\n"
		st, ans := ingestPost(t, in, a.contentType, a.header, line)
		if st != a.want || !strings.Contains(ans, a.answerHas) {
			t.Errorf("%s: %d %q, want %d saying %q", a.name, st, ans, a.want, a.answerHas)
		}
	}
	// Programs, and the listener's own origin, are not affected.
	legit := []struct {
		name   string
		header map[string]string
	}{
		{"program", nil},
		{"own origin", map[string]string{"Origin": "http://" + in.Admin, "Sec-Fetch-Site": "same-origin"}},
	}
	for i, l := range legit {
		line := `{"level":"info","msg":"[openReplaySession.id=` + session + `] legit-line-` + string(rune('a'+i)) + `"}` + "\n"
		if st, ans := ingestPost(t, in, "application/x-ndjson", l.header, line); st != http.StatusAccepted {
			t.Errorf("%s: %d %q, want 202", l.name, st, ans)
		}
	}

	// Lines go out in the order they were accepted: once the legitimate
	// lines are written, any attack line accepted before them would be too.
	var text string
	if _, ok := waitFor(15*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		text = string(b)
		return strings.Contains(text, "legit-line-a") && strings.Contains(text, "legit-line-b")
	}); !ok {
		t.Fatalf("the accepted lines never reached %s:\n%s", out, tail(text, 2000))
	}
	leaked := 0
	for _, doc := range readLines(t, out) {
		if strings.Contains(string(doc), "attack-line-") {
			leaked++
			t.Errorf("a refused line made a document: %s", doc)
		}
	}
	r.add("attack_lines_recorded", leaked)

	m := in.metrics()
	cross, ctype := m[`replaylink_admin_rejected_total{reason="cross_origin"}`], m[`replaylink_capture_ingest_rejected_total{reason="content_type"}`]
	r.add("rejected_cross_origin", cross)
	r.add("rejected_content_type", ctype)
	if cross != 3 || ctype != 3 {
		t.Errorf("refusals counted: cross_origin %v, content_type %v; want 3 and 3", cross, ctype)
	}
}

// ingestPost sends body to POST /ingest with the given Content-Type (none
// when empty) and headers, and returns the status and the answer's error.
func ingestPost(t testing.TB, in *instance, contentType string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.Admin+"/ingest", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("POST /ingest: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &ans) != nil || ans.Error == "" {
		return resp.StatusCode, string(raw) // not the ingest handler's JSON (403 from the guard)
	}
	return resp.StatusCode, ans.Error
}

// TestAdminConnectionsTimeOut: a keep-alive connection to the admin
// listener that stays idle, or never finishes its headers, is closed after
// the configured time; one that keeps sending requests stays open.
func TestAdminConnectionsTimeOut(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0)
	dir := t.TempDir()
	const idle, header = time.Second, time.Second
	in := startReplaylink(t, procOptions{command: "serve", args: []string{"--upstream", b.URL,
		"--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
		"--admin-idle-timeout", idle.String(), "--admin-header-timeout", header.String(), "--admin-read-timeout", "5s"}})

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", in.Admin)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: "+in.Admin+"\r\n\r\n"); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			return fmt.Errorf("GET /livez: %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		return nil
	}
	// closedWithin waits for the server to close c and says how long it took.
	closedWithin := func(c net.Conn, br *bufio.Reader, limit time.Duration) (time.Duration, bool) {
		start := time.Now()
		c.SetReadDeadline(start.Add(limit))
		_, err := br.ReadByte()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return time.Since(start), false
		}
		return time.Since(start), err != nil
	}

	idleConn, idleBR := dial()
	if err := get(idleConn, idleBR); err != nil {
		t.Fatal(err)
	}
	slowConn, slowBR := dial()
	slowStart := time.Now()
	if _, err := io.WriteString(slowConn, "GET /livez HTTP/1.1\r\nHost: "); err != nil { // headers never finished
		t.Fatal(err)
	}
	busyConn, busyBR := dial()
	if err := get(busyConn, busyBR); err != nil {
		t.Fatal(err)
	}

	// The busy connection sends a request every 300 ms for 3 idle periods.
	busyDone := make(chan error, 1)
	go func() {
		for end := time.Now().Add(3 * idle); time.Now().Before(end); {
			time.Sleep(300 * time.Millisecond)
			if err := get(busyConn, busyBR); err != nil {
				busyDone <- err
				return
			}
		}
		busyDone <- nil
	}()

	const limit = 8 * time.Second // far above the timeouts: a connection still open then is never closed
	took, closed := closedWithin(idleConn, idleBR, limit)
	r.add("idle_closed_after_s", seconds(took))
	if !closed {
		t.Errorf("an idle keep-alive connection was still open %v after its last answer (--admin-idle-timeout %v)", took.Round(time.Millisecond), idle)
	} else if took < idle/2 {
		t.Errorf("the idle connection was closed after %v, before --admin-idle-timeout %v", took, idle)
	}
	took, closed = closedWithin(slowConn, slowBR, limit)
	r.add("slow_headers_closed_after_s", seconds(time.Since(slowStart)))
	if !closed {
		t.Errorf("a connection that never finished its headers was still open after %v (--admin-header-timeout %v)", took.Round(time.Millisecond), header)
	}
	if err := <-busyDone; err != nil {
		t.Errorf("a connection sending a request every 300 ms was cut (the timeout is for idleness, not a lifetime): %v", err)
	}
}
