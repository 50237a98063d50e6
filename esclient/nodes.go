package esclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/backoff"
)

// nodePool spreads requests over the HTTP nodes of one cluster, below the
// Elasticsearch client. The client is given one address (the first
// --es-url) and keeps retries off; every request it makes comes here and is
// aimed at a node chosen round robin among those free to take work.
//
// Why our own and not the client's pool: the client retries a failed request
// on another node only together with its own retry loop (which would fight
// the shipper's backoff and buffer each bulk body once more), and it knows
// nothing of push-back: a node answering 429 stays in rotation. Here:
//
//   - a request that gets no answer from a node (refused, reset, timed out:
//     nodeUnreachable) goes to another node at once, without waiting for a
//     backoff. Resending is safe for everything replaylink sends: bulk
//     documents have deterministic _ids (a create that already got in is a
//     409, an index overwrites with the same source), searches and set-up
//     requests are idempotent. The node is left alone for a while that
//     doubles with each failure (nodeWaitMin to nodeWaitMax, jittered) and
//     is then tried again with a real request; its first answer puts it
//     back in rotation.
//   - a node that pushes back (nodePushedBack: 429, 503) is left alone the
//     same way, and the request goes to another node at once; the others
//     keep taking work.
//   - when no node is free, the one free soonest is tried, and its answer
//     (or error) goes to the caller, whose own backoff then applies: the
//     pool never waits.
//
// What to do with an answer is decided by judgeNode, a pure function of the
// status and the transport error (TestJudgeNode). The nodes are the given
// URLs, or with discovery (Client.Discover, --es-discover) the cluster's HTTP
// nodes learnt from _nodes/http. Each node has metrics labelled with its
// host:port, so their number is bounded by the nodes ever known.
type nodePool struct {
	next http.RoundTripper
	// base is the address the client was given: its path prefix is
	// replaced by each node's.
	base *url.URL
	log  zerolog.Logger
	now  func() time.Time

	mu     sync.Mutex
	nodes  []*esNode          // in rotation
	known  map[string]*esNode // every node ever in rotation, by host:port (metrics stay bound to it)
	cursor int                // round robin position
}

var _ http.RoundTripper = (*nodePool)(nil)

// How long a node that failed or pushed back is left alone before it is
// tried again: doubling per consecutive failure, jittered.
const (
	nodeWaitMin = time.Second
	nodeWaitMax = 30 * time.Second
)

// esNode is one HTTP node of the cluster and what the pool knows of it.
type esNode struct {
	url   *url.URL
	label string // host:port, the metrics label

	// Guarded by the pool's mutex.
	failures int       // consecutive failures and push-backs
	waitTill time.Time // not chosen before this while another node is free

	requests    *metrics.Counter
	unreachable *metrics.Counter
	pushedBack  *metrics.Counter
	// available is 0 from a failure to the node's next answer. (Set, not
	// read from the pool: the metrics are process-wide, and a process may
	// have several clients, e.g. the shipper's and lookup's.)
	available *metrics.Gauge
}

// nodeOutcome is what one attempt says about the node it went to.
type nodeOutcome uint8

const (
	// nodeAnswered: the answer is the caller's, whatever its status; the
	// node works.
	nodeAnswered nodeOutcome = iota + 1
	// nodeUnreachable: no answer (refused, reset, timed out, a gateway
	// that cannot reach it): try another node now, this one later.
	nodeUnreachable
	// nodePushedBack: the node cannot take work now (429, 503): try
	// another node now, this one later.
	nodePushedBack
)

// judgeNode decides what a node's answer (status, or err when there was
// none) means for the node. It is pure.
func judgeNode(status int, err error) nodeOutcome {
	switch {
	case err != nil:
		return nodeUnreachable
	case status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		// A proxy or load balancer in front of the node could not reach it.
		return nodeUnreachable
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return nodePushedBack
	default:
		return nodeAnswered
	}
}

// NodeUnreachableError is a request no node answered: the error of the last
// node tried. Transient by nature: the shipper retries with backoff.
type NodeUnreachableError struct {
	Node  string // host:port of the last node tried
	Tried int    // nodes tried for this request
	Err   error
}

func (e *NodeUnreachableError) Error() string {
	return fmt.Sprintf("no answer from Elasticsearch node %s (%d node(s) tried): %v", e.Node, e.Tried, e.Err)
}

func (e *NodeUnreachableError) Unwrap() error { return e.Err }

// newNodePool puts urls (already checked, without user information) in
// rotation; requests are expected at urls[0].
func newNodePool(next http.RoundTripper, urls []string, log zerolog.Logger) (*nodePool, error) {
	base, err := url.Parse(urls[0])
	if err != nil {
		return nil, err
	}
	p := &nodePool{next: next, base: base, log: log, now: time.Now, known: map[string]*esNode{}}
	us := make([]*url.URL, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	p.setNodes(us)
	return p, nil
}

// setNodes puts exactly these nodes in rotation, keeping what is known of
// those already there.
func (p *nodePool) setNodes(us []*url.URL) {
	p.mu.Lock()
	defer p.mu.Unlock()
	nodes := make([]*esNode, 0, len(us))
	seen := map[string]bool{}
	for _, u := range us {
		if seen[u.Host] {
			continue
		}
		seen[u.Host] = true
		n := p.known[u.Host]
		if n == nil {
			label := u.Host
			n = &esNode{
				label:       label,
				requests:    metrics.GetOrCreateCounter(fmt.Sprintf(`replaylink_ship_node_requests_total{node=%q}`, label)),
				unreachable: metrics.GetOrCreateCounter(fmt.Sprintf(`replaylink_ship_node_failures_total{node=%q,reason="unreachable"}`, label)),
				pushedBack:  metrics.GetOrCreateCounter(fmt.Sprintf(`replaylink_ship_node_failures_total{node=%q,reason="pushed_back"}`, label)),
			}
			n.available = metrics.GetOrCreateGauge(fmt.Sprintf(`replaylink_ship_node_available{node=%q}`, label), nil)
			n.available.Set(1)
			p.known[u.Host] = n
		}
		n.url = u
		nodes = append(nodes, n)
	}
	p.nodes = nodes
}

// hosts lists the host:port of the nodes in rotation, in order.
func (p *nodePool) hosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		out[i] = n.label
	}
	return out
}

// pick chooses the node for an attempt: round robin among the free nodes
// not tried yet; on the first attempt, when none is free, the one free
// soonest. nil: no node is left for this request.
func (p *nodePool) pick(tried []*esNode) *esNode {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var soonest *esNode
	for i := range p.nodes {
		n := p.nodes[(p.cursor+i)%len(p.nodes)]
		if contains(tried, n) {
			continue
		}
		if !now.Before(n.waitTill) {
			p.cursor = (p.cursor + i + 1) % len(p.nodes)
			return n
		}
		if soonest == nil || n.waitTill.Before(soonest.waitTill) {
			soonest = n
		}
	}
	if len(tried) > 0 {
		return nil
	}
	return soonest
}

func contains(ns []*esNode, n *esNode) bool {
	for _, m := range ns {
		if m == n {
			return true
		}
	}
	return false
}

// report records the outcome of an attempt on n.
func (p *nodePool) report(n *esNode, o nodeOutcome, cause string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o == nodeAnswered {
		if n.failures > 0 {
			p.log.Info().Str("node", n.label).Msg("ship: Elasticsearch node answers again; back in rotation")
		}
		n.failures, n.waitTill = 0, time.Time{}
		n.available.Set(1)
		return
	}
	n.available.Set(0)
	wait := backoff.Delay(n.failures, nodeWaitMin, nodeWaitMax, rand.Float64())
	if n.failures == 0 {
		p.log.Warn().Str("node", n.label).Str("cause", cause).Dur("retry_in", wait).
			Msg("ship: Elasticsearch node left out of rotation; requests go to the others")
	}
	n.failures++
	n.waitTill = p.now().Add(wait)
}

// RoundTrip sends req to a node, and to the next at once when that one
// gives no answer or pushes back. When no other node is free, the last
// answer, or error, is the caller's.
func (p *nodePool) RoundTrip(req *http.Request) (*http.Response, error) {
	var tried []*esNode
	var resp *http.Response
	var err error
	resendable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for {
		n := p.pick(tried)
		if n == nil {
			return resp, err
		}
		if resp != nil { // a push-back, dropped for another node's answer
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		r, aimErr := p.aim(req, n, len(tried) > 0)
		if aimErr != nil {
			return nil, aimErr
		}
		tried = append(tried, n)
		n.requests.Inc()
		resp, err = p.next.RoundTrip(r)
		if err != nil && req.Context().Err() != nil {
			return nil, err // the caller gave up: that says nothing about the node
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		o := judgeNode(status, err)
		cause := ""
		switch o {
		case nodeUnreachable:
			n.unreachable.Inc()
			cause = fmt.Sprintf("status %d", status)
			if err != nil {
				cause = err.Error()
				err = &NodeUnreachableError{Node: n.label, Tried: len(tried), Err: err}
			}
		case nodePushedBack:
			n.pushedBack.Inc()
			cause = fmt.Sprintf("status %d", status)
		}
		p.report(n, o, cause)
		if o == nodeAnswered || !resendable {
			return resp, err
		}
	}
}

// aim copies req for node n: its scheme, host and path prefix, and for a
// resend a fresh body.
func (p *nodePool) aim(req *http.Request, n *esNode, resend bool) (*http.Request, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host = n.url.Scheme, n.url.Host
	r.URL.Path = strings.TrimSuffix(n.url.Path, "/") + strings.TrimPrefix(req.URL.Path, strings.TrimSuffix(p.base.Path, "/"))
	r.URL.RawPath = ""
	r.Host = ""
	if resend && req.Body != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("resend to Elasticsearch node %s: %w", n.label, err)
		}
		r.Body = body
	}
	return r, nil
}

// discover asks the cluster for its HTTP nodes (_nodes/http) and puts them
// in rotation, with the scheme and path prefix of the first --es-url.
// Dedicated cluster managers are left out, as Elasticsearch's clients do:
// they should not take indexing traffic. An answer naming no node changes
// nothing.
func (p *nodePool) discover(ctx context.Context, client esapi.Transport) error {
	res, err := esapi.NodesInfoRequest{Metric: []string{"http"}, FilterPath: []string{"nodes.*.roles", "nodes.*.http.publish_address"}}.Do(ctx, client)
	if err != nil {
		return fmt.Errorf("node discovery: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("node discovery: %w", err)
	}
	if res.IsError() {
		return NewResponseError("node discovery (_nodes/http)", res.StatusCode, body)
	}
	us, err := discoveredNodes(body, p.base)
	if err != nil {
		return err
	}
	if len(us) == 0 {
		return errors.New("node discovery: _nodes/http named no HTTP node that takes indexing; keeping the nodes known")
	}
	before := p.hosts()
	p.setNodes(us)
	if after := p.hosts(); strings.Join(before, ",") != strings.Join(after, ",") {
		p.log.Info().Strs("nodes", after).Msg("ship: Elasticsearch nodes discovered")
	}
	return nil
}

// discoveredNodes reads a _nodes/http answer into node URLs with base's
// scheme and path prefix, sorted by address so that every sidecar starts
// its round robin in the same order but at its own place.
func discoveredNodes(body []byte, base *url.URL) ([]*url.URL, error) {
	var info struct {
		Nodes map[string]struct {
			Roles []string `json:"roles"`
			HTTP  struct {
				PublishAddress string `json:"publish_address"`
			} `json:"http"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("node discovery: unreadable _nodes/http answer: %w", err)
	}
	var hosts []string
	for _, n := range info.Nodes {
		if onlyClusterManager(n.Roles) || n.HTTP.PublishAddress == "" {
			continue
		}
		hosts = append(hosts, publishHost(n.HTTP.PublishAddress))
	}
	slices.Sort(hosts)
	us := make([]*url.URL, 0, len(hosts))
	for _, h := range hosts {
		us = append(us, &url.URL{Scheme: base.Scheme, Host: h, Path: base.Path})
	}
	return us, nil
}

// publishHost turns a publish address into host:port: "hostname/1.2.3.4:9200"
// keeps the hostname (certificates name it), "1.2.3.4:9200" and
// "[::1]:9200" stay as they are.
func publishHost(addr string) string {
	name, ipPort, ok := strings.Cut(addr, "/")
	if !ok {
		return addr
	}
	_, port, err := net.SplitHostPort(ipPort)
	if err != nil || name == "" {
		return ipPort
	}
	return net.JoinHostPort(name, port)
}

func onlyClusterManager(roles []string) bool {
	if len(roles) == 0 {
		return false // older answers or filtered: assume it takes work
	}
	for _, r := range roles {
		if r != "master" && r != "cluster_manager" && r != "voting_only" {
			return false
		}
	}
	return true
}
