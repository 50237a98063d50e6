package faults

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackendCannotDesyncClients: a backend that sends bytes after its
// answers (a second response, a body on a HEAD or 204 answer; testbackend
// -misbehave) must never make replaylink hand them to the next request on
// the pooled connection: every client, one after the other and all at
// once, gets only its own answers. Answers without Content-Type reach the
// client without one.
func TestBackendCannotDesyncClients(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0, "-misbehave")
	dir := t.TempDir()
	rl := startReplaylink(t, procOptions{command: "serve", args: []string{
		"--upstream", b.URL, "--spool-dir", filepath.Join(dir, "spool"), "--output", filepath.Join(dir, "docs.ndjson"),
	}})
	base := "http://" + rl.Listen

	// One after the other: a misbehaving request, then, once its stray bytes
	// are on the connection (the backend writes them 20 ms after the
	// answer), another client's request.
	attacker, victim := newClient(), newClient()
	const tries = 6
	sequentialWrong := 0
	for _, kind := range []struct{ method, path string }{
		{http.MethodGet, "/extra"}, {http.MethodGet, "/extra-same"}, {http.MethodHead, "/head"},
		{http.MethodGet, "/nocontent"}, {http.MethodGet, "/nocontent-bare"},
	} {
		for try := range tries {
			id := fmt.Sprintf("%s-%d", kind.path[1:], try)
			if p := ownAnswer(attacker, base, kind.method, kind.path, id); p != "" {
				t.Errorf("the misbehaving request itself: %s", p)
			}
			time.Sleep(200 * time.Millisecond)
			if p := ownAnswer(victim, base, http.MethodGet, "/own", "victim-"+id); p != "" {
				sequentialWrong++
				t.Errorf("after %s %s: the next client did not get its own answer: %s", kind.method, kind.path, p)
			}
		}
	}
	r.add("sequential_wrong", sequentialWrong)

	// All at once: the misbehaviours that close the connection however the
	// stray bytes arrive (a body announced on HEAD and 204, a second
	// response in the same write) mixed with correct requests.
	const clients, perClient = 8, 30
	mix := []struct{ method, path string }{
		{http.MethodGet, "/own"}, {http.MethodHead, "/head"}, {http.MethodGet, "/own"},
		{http.MethodGet, "/nocontent"}, {http.MethodGet, "/own"}, {http.MethodGet, "/extra-same"},
	}
	var mu sync.Mutex
	var wrong []string
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			for i := range perClient {
				m := mix[(c+i)%len(mix)]
				if p := ownAnswer(client, base, m.method, m.path, fmt.Sprintf("c%d-%d", c, i)); p != "" {
					mu.Lock()
					wrong = append(wrong, p)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	r.add("concurrent_wrong", len(wrong))
	for i, p := range wrong {
		if i == 5 {
			break
		}
		t.Error(p)
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d concurrent requests did not get their own answer", len(wrong), clients*perClient)
	}

	m := rl.metrics()
	for _, reason := range []string{"stray_bytes", "bodiless_with_length"} {
		series := `replaylink_upstream_reuse_refused_total{reason="` + reason + `"}`
		r.add(reason, m[series])
		if m[series] == 0 {
			t.Errorf("%s is 0: the refused connections were not counted", series)
		}
	}
	rl.checkMemory(r)
}

// ownAnswer sends method path?id=id and says what is wrong with the answer,
// or "" when it is the request's own: the status the backend gave, its
// X-Echo-Id and body, and no Content-Type (the backend sends none).
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
	wantStatus, wantBody := http.StatusOK, "own "+id
	switch {
	case method == http.MethodHead:
		wantBody = ""
	case strings.HasPrefix(path, "/nocontent"):
		wantStatus, wantBody = http.StatusNoContent, ""
	}
	if err != nil || resp.StatusCode != wantStatus || resp.Header.Get("X-Echo-Id") != id || string(body) != wantBody {
		return fmt.Sprintf("%s %s?id=%s got %d X-Echo-Id=%q body %q (%v), want %d naming its own id",
			method, path, id, resp.StatusCode, resp.Header.Get("X-Echo-Id"), body, err, wantStatus)
	}
	if ct, ok := resp.Header["Content-Type"]; ok {
		return fmt.Sprintf("%s %s?id=%s got Content-Type %q, which the backend did not send", method, path, id, ct)
	}
	return ""
}

// newClient is a client with keep-alive connections of its own.
func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
}
