package esclient

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/estest"
)

func TestJudgeNode(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://n:9200/_bulk", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		status int
		err    error
		want   nodeOutcome
	}{
		{0, refused, nodeUnreachable},
		{0, syscall.ECONNRESET, nodeUnreachable},
		{0, io.ErrUnexpectedEOF, nodeUnreachable},
		{200, nil, nodeAnswered},
		{201, nil, nodeAnswered},
		{400, nil, nodeAnswered}, // the request's fault: the same anywhere
		{401, nil, nodeAnswered},
		{404, nil, nodeAnswered},
		{409, nil, nodeAnswered},
		{413, nil, nodeAnswered},
		{429, nil, nodePushedBack},
		{500, nil, nodeAnswered}, // the node answered; the shipper decides
		{502, nil, nodeUnreachable},
		{503, nil, nodePushedBack},
		{504, nil, nodeUnreachable},
	} {
		if got := judgeNode(tc.status, tc.err); got != tc.want {
			t.Errorf("judgeNode(%d, %v) = %d, want %d", tc.status, tc.err, got, tc.want)
		}
	}
}

// countingNode is a local HTTP server standing in for one node of a
// cluster: several real nodes that can each be killed, slowed or made to
// push back at will do not fit a unit test (the real cluster tests are in
// package faults). It answers with its name and counts what it served.
type countingNode struct {
	name   string
	srv    *httptest.Server
	served atomic.Int64
	status atomic.Int32 // answered status; 200 when 0
	mu     sync.Mutex
	bodies []string
	paths  []string
}

func newCountingNode(t *testing.T, name string) *countingNode {
	n := &countingNode{name: name}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		n.bodies = append(n.bodies, string(b))
		n.paths = append(n.paths, r.URL.Path)
		n.mu.Unlock()
		if st := n.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		n.served.Add(1)
		io.WriteString(w, n.name)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// clusterPool is a node pool over the given URLs with a clock the test moves.
type clusterPool struct {
	*nodePool
	mu  sync.Mutex
	now time.Time
}

func newClusterPool(t *testing.T, urls ...string) *clusterPool {
	t.Helper()
	p, err := newNodePool(http.DefaultTransport.(*http.Transport).Clone(), urls, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterPool{nodePool: p, now: time.Unix(1_700_000_000, 0)}
	p.now = func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
	return c
}

func (c *clusterPool) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// post sends body to the pool's first URL (where the client sends
// everything) and returns who answered, with what.
func (c *clusterPool) post(t *testing.T, body string) (status int, from string, err error) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.base.String()+"/_bulk", strings.NewReader(body))
	resp, err := c.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestRequestsAreSpreadOverNodes(t *testing.T) {
	a, b, c := newCountingNode(t, "a"), newCountingNode(t, "b"), newCountingNode(t, "c")
	pool := newClusterPool(t, a.srv.URL, b.srv.URL, c.srv.URL)
	for i := range 30 {
		if st, _, err := pool.post(t, fmt.Sprint(i)); err != nil || st != 200 {
			t.Fatalf("request %d: %d %v", i, st, err)
		}
	}
	for _, n := range []*countingNode{a, b, c} {
		if got := n.served.Load(); got != 10 {
			t.Errorf("node %s served %d of 30 requests, want 10 (round robin)", n.name, got)
		}
	}
}

func TestDeadNodeIsSkippedAtOnceAndUsedAgainWhenBack(t *testing.T) {
	a, b := newCountingNode(t, "a"), newCountingNode(t, "b")
	proxy := estest.NewProxy(t, a.srv.URL) // node a, as the pool sees it: it can die and come back
	pool := newClusterPool(t, proxy.URL(), b.srv.URL)
	proxy.Down()
	label := strings.TrimPrefix(proxy.URL(), "http://")
	unreachable := metrics.GetOrCreateCounter(fmt.Sprintf(`replaylink_ship_node_failures_total{node=%q,reason="unreachable"}`, label))
	before := unreachable.Get()

	for i := range 20 {
		body := fmt.Sprintf("bulk body %d", i)
		start := time.Now()
		st, from, err := pool.post(t, body)
		if err != nil || st != 200 || from != "b" {
			t.Fatalf("request %d with node a dead: status %d from %q, %v; want 200 from b", i, st, from, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("request %d took %v: the dead node must cost no backoff", i, d)
		}
	}
	// The body reached b whole, also when it was sent a second time.
	b.mu.Lock()
	for i, got := range b.bodies {
		if want := fmt.Sprintf("bulk body %d", i); got != want {
			t.Errorf("node b got body %q, want %q", got, want)
		}
	}
	b.mu.Unlock()
	if got := unreachable.Get() - before; got != 1 {
		t.Errorf("node a was tried %d times while left out of rotation, want 1 (then it waits)", got)
	}
	available := metrics.GetOrCreateGauge(fmt.Sprintf(`replaylink_ship_node_available{node=%q}`, label), nil)
	if available.Get() != 0 {
		t.Error("replaylink_ship_node_available of the dead node is not 0")
	}

	// Back, but still waiting: not tried yet. Once its wait is over, it
	// takes its share again.
	proxy.Up()
	pool.post(t, "x")
	if a.served.Load() != 0 {
		t.Fatal("node a was tried again before its wait was over")
	}
	pool.advance(nodeWaitMin)
	for range 10 {
		pool.post(t, "y")
	}
	if got := a.served.Load(); got < 4 {
		t.Errorf("node a served %d of 10 requests once back, want about half", got)
	}
	if available.Get() != 1 {
		t.Error("replaylink_ship_node_available of the node back is not 1")
	}
}

func TestPushingBackNodeIsBackedOffWhileOthersTakeTheWork(t *testing.T) {
	a, b, c := newCountingNode(t, "a"), newCountingNode(t, "b"), newCountingNode(t, "c")
	pool := newClusterPool(t, a.srv.URL, b.srv.URL, c.srv.URL)
	a.status.Store(http.StatusTooManyRequests)
	for i := range 30 {
		st, from, err := pool.post(t, "docs")
		if err != nil || st != 200 || from == "a" {
			t.Fatalf("request %d: %d from %q, %v; want 200 from b or c", i, st, from, err)
		}
	}
	a.mu.Lock()
	asked := len(a.bodies)
	a.mu.Unlock()
	if asked != 1 {
		t.Errorf("the node answering 429 was asked %d times, want 1: it must be backed off", asked)
	}
	if b.served.Load() != 15 || c.served.Load() != 15 {
		t.Errorf("b served %d, c %d: want the work shared, 15 each", b.served.Load(), c.served.Load())
	}
	// Its wait over and still pushing back: asked once more, and waits longer.
	pool.advance(nodeWaitMax)
	pool.post(t, "docs")
	pool.post(t, "docs")
	a.mu.Lock()
	asked = len(a.bodies)
	a.mu.Unlock()
	if asked != 2 {
		t.Errorf("after its wait the node was asked %d times in all, want 2", asked)
	}
	// Taking work again: back in rotation.
	a.status.Store(0)
	pool.advance(nodeWaitMax)
	for range 9 {
		pool.post(t, "docs")
	}
	if got := a.served.Load(); got != 3 {
		t.Errorf("the node served %d of 9 once it took work again, want 3", got)
	}
}

func TestNoNodeFreeGivesTheLastAnswer(t *testing.T) {
	t.Run("all dead", func(t *testing.T) {
		pool := newClusterPool(t, estest.DeadURL(t), estest.DeadURL(t), estest.DeadURL(t))
		_, _, err := pool.post(t, "docs")
		var ne *NodeUnreachableError
		if !errors.As(err, &ne) || ne.Tried != 3 {
			t.Fatalf("err = %v, want a NodeUnreachableError after trying all 3 nodes", err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("err = %v: the cause (connection refused) is lost", err)
		}
		// Every node waits now: the next request still tries one (the one
		// free soonest), so the shipper's own backoff governs.
		_, _, err = pool.post(t, "docs")
		if !errors.As(err, &ne) || ne.Tried != 1 {
			t.Fatalf("err = %v, want one node tried while all wait", err)
		}
	})
	t.Run("all push back", func(t *testing.T) {
		a, b := newCountingNode(t, "a"), newCountingNode(t, "b")
		a.status.Store(429)
		b.status.Store(429)
		pool := newClusterPool(t, a.srv.URL, b.srv.URL)
		st, _, err := pool.post(t, "docs")
		if err != nil || st != 429 {
			t.Fatalf("got %d, %v; want the 429 for the shipper to back off", st, err)
		}
	})
}

func TestNodePathPrefixes(t *testing.T) {
	a, b := newCountingNode(t, "a"), newCountingNode(t, "b")
	pool := newClusterPool(t, a.srv.URL+"/es", b.srv.URL+"/other/")
	pool.post(t, "1") // to base: /es/_bulk
	pool.post(t, "2")
	if a.paths[0] != "/es/_bulk" || b.paths[0] != "/other/_bulk" {
		t.Errorf("paths %q and %q, want /es/_bulk and /other/_bulk", a.paths, b.paths)
	}
}

func TestDiscoveredNodes(t *testing.T) {
	base, _ := url.Parse("https://es.example.com:9200/prefix")
	// OpenSearch 2.19's answer, filtered as discover asks, with a
	// dedicated cluster manager and a node publishing a hostname.
	body := `{"nodes":{
	 "x1":{"roles":["cluster_manager","data","ingest"],"http":{"publish_address":"127.0.0.1:9265"}},
	 "x2":{"roles":["cluster_manager"],"http":{"publish_address":"127.0.0.1:9266"}},
	 "x3":{"roles":["data"],"http":{"publish_address":"es-data-1.internal/10.0.0.7:9200"}},
	 "x4":{"roles":["master","voting_only"],"http":{"publish_address":"10.0.0.9:9200"}},
	 "x5":{"roles":["data","ingest"],"http":{"publish_address":"[::1]:9200"}}}}`
	us, err := discoveredNodes([]byte(body), base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range us {
		got = append(got, u.String())
	}
	want := "https://127.0.0.1:9265/prefix https://[::1]:9200/prefix https://es-data-1.internal:9200/prefix"
	if strings.Join(got, " ") != want {
		t.Errorf("discovered\n %s\nwant\n %s", strings.Join(got, " "), want)
	}
	if _, err := discoveredNodes([]byte(`<html>`), base); err == nil {
		t.Error("an unreadable answer gave no error")
	}
}

func TestDiscoverOnTheRealNode(t *testing.T) {
	nodeURL := estest.URL(t)
	c, err := New(Options{URLs: []string{estest.DeadURL(t), nodeURL}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(nodeURL)
	if got := c.Nodes(); len(got) != 1 || got[0] != u.Host {
		t.Errorf("nodes after discovery: %v, want [%s]: the dead URL dropped, the node's own address kept", got, u.Host)
	}
}
