package ship

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/internal/estest"
	"github.com/replaylink/replaylink/memstore"
)

// node is the real search node of the integration tests, spoken to with
// plain HTTP so that the checks do not depend on the code under test.
type node struct {
	t   testing.TB
	url string
}

func realNode(t testing.TB) *node {
	return &node{t: t, url: strings.TrimRight(estest.URL(t), "/")}
}

func (n *node) do(method, path string, body string) (int, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// count refreshes and counts what the index (or alias) holds.
func (n *node) count(index string) int {
	n.t.Helper()
	n.do("POST", "/"+index+"/_refresh", "")
	st, b := n.do("GET", "/"+index+"/_count", "")
	if st != 200 {
		n.t.Fatalf("count %s: %d %s", index, st, b)
	}
	var c struct{ Count int }
	json.Unmarshal(b, &c)
	return c.Count
}

// testIndex returns a unique index name for t, deleted (with its template)
// when the test ends.
func testIndex(t *testing.T, n *node) string {
	var r [4]byte
	rand.Read(r[:])
	name := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-")
	index := fmt.Sprintf("rl-test-%.40s-%s", strings.Trim(name, "-"), hex.EncodeToString(r[:]))
	t.Cleanup(func() {
		n.do("DELETE", "/"+index, "")
		n.do("DELETE", "/_index_template/replaylink-"+index, "")
	})
	return index
}

// testDoc is document i, of session 1000 + i%7, shaped as enrich writes them.
func testDoc(i int) (id, source []byte) {
	ts := time.Unix(1714564800+int64(i), 0).UTC().Format("2006-01-02T15:04:05.000Z")
	session := 1000 + i%7
	id = fmt.Appendf(nil, "doc-%06d", i)
	source = fmt.Appendf(nil, `{"@timestamp":%q,"utc_time":%q,"message":"[openReplaySession.id=%d] GET /api/items/%d -> 200 (1.2 ms)",`+
		`"level":"info","tags":["access"],"openReplaySession":{"id":"%d","source":"header"},`+
		`"http":{"request":{"id":"req-%d","method":"GET"},"response":{"status_code":200}},"event":{"duration":1200000,"dataset":"replaylink.access"}}`,
		ts, ts, session, i, session, i)
	return id, source
}

func publishN(t testing.TB, p *Shipper, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		id, src := testDoc(i)
		if err := p.Publish(id, src); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
}

func closeWithin(t testing.TB, p *Shipper, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// fastOptions are options for tests: short timers, small bulks.
func fastOptions(t testing.TB, urls ...string) Options {
	return Options{
		SpoolDir:      t.TempDir(),
		SpoolMaxBytes: 1 << 30,
		SyncInterval:  20 * time.Millisecond,
		FlushBytes:    32 << 10,
		FlushInterval: 50 * time.Millisecond,
		Workers:       2,
		Index:         "logs",
		MemoryStore:   50_000,
		Client:        esclient.Options{URLs: urls, Timeout: 5 * time.Second},
		BackoffMin:    20 * time.Millisecond,
		BackoffMax:    200 * time.Millisecond,
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer is an io.Writer the test reads after the writer is done.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// shipTo starts a shipper that ships to a fresh test index (with the
// template) on n, reached at url: the node itself or a proxy in front of it.
func shipTo(t *testing.T, n *node, url string) (*Shipper, Options, string) {
	t.Helper()
	index := testIndex(t, n)
	opts := fastOptions(t, url)
	opts.Index, opts.InstallTemplate = index, true
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, opts, index
}

// ids lists the _ids of documents the memory store returned.
func ids(docs []memstore.Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.ID)
	}
	return out
}
