package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// The cluster tests run against the real three-node cluster of
// testenv/es/cluster.sh (make test's cluster phase; each test waits for a
// green cluster of three before it starts). Each puts four `replaylink run`
// instances, each in front of its own testbackend, under clusterRate
// requests per second in all, all shipping to one index, and breaks nodes
// under them.
//
// The short form (make test) runs 600 requests/s: each request makes about
// four documents (the access event and the backend's lines), written twice
// (one replica), and at 2,000 requests/s the three nodes, the eight
// processes and the load share two cores so tightly that a restarted node
// takes a minute or two to rejoin. make soak runs 2,000.
var (
	clusterRate = sizeInt("CLUSTER_RATE", 600, 2000)
	// clusterOutage is how long a killed node stays away, and how long the
	// push-back lasts.
	clusterOutage = sizeDuration("CLUSTER_OUTAGE", 10*time.Second, 30*time.Second)
)

const (
	// recoveryBound is how soon after a node's failure the cluster must take
	// documents again, searchable: the survivors notice the failure,
	// elect a cluster manager if it was one, promote the replicas of its
	// primaries, and the shippers' retries land. On this 2-core machine,
	// shared with the load and eight processes, the errors of an outage's
	// first seconds were mostly found within its 10 s, but once (load
	// average 20) 6 of 40 were not; errors_found_s in the report says how
	// long it took.
	recoveryBound = 30 * time.Second
	fleetSize     = 4
	// failEvery: every failEvery-th request goes to /fail, a 500 whose
	// document is an error OpenReplay must find.
	failEvery = 40
)

// fleet is the four instances with their loads.
type fleet struct {
	t     *testing.T
	c     *estest.Cluster
	x     *esIndex
	ins   []*instance
	loads []*load
	r     *report

	stop     context.CancelFunc
	done     sync.WaitGroup
	notReady atomic.Int64 // /readyz answers other than 200
	firstBad atomic.Value // the first of them, for the message
}

// startFleet starts the instances with --es-url urls (the cluster's nodes,
// or stand-ins in front of them) and their loads.
func startFleet(t *testing.T, c *estest.Cluster, urls []string) *fleet {
	f := &fleet{t: t, c: c, r: newReport(t)}
	f.x = newIndex(t, c.URLs[1])
	for i := range fleetSize {
		addr := estest.FreeAddr(t)
		in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: []string{
			"--upstream", "http://" + addr, "--es-url", strings.Join(urls, ","), "--index", f.x.Name,
			"--spool-dir", t.TempDir(), "--flush-interval", "200ms",
		}})
		if _, ok := waitFor(15*time.Second, func() bool { return readyz(in) == http.StatusOK }); !ok {
			t.Fatalf("instance %d: /readyz never answered 200", i)
		}
		l := newLoad(t, fmt.Sprintf("c%d", i), in.Listen)
		l.decorate = func(i int, req *http.Request) {
			if i%failEvery == 0 {
				req.URL.Path = "/fail"
			}
		}
		f.ins, f.loads = append(f.ins, in), append(f.loads, l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	for i := range fleetSize {
		f.done.Add(2)
		go func() { defer f.done.Done(); f.loads[i].run(ctx, clusterRate/fleetSize, time.Hour) }()
		go func() { defer f.done.Done(); f.watchReady(ctx, f.ins[i]) }()
	}
	t.Cleanup(f.end)
	f.waitIndexGreen()
	return f
}

// waitIndexGreen waits until the instances have created the index and each
// of its shards has its replica started. Breaking a node before that is a
// different test: a node killed while it holds the only started copy of a
// shard takes the shard with it (the index is red, bulk requests wait for
// the primary) until it is back, and no client can help it.
func (f *fleet) waitIndexGreen() {
	if _, ok := waitFor(30*time.Second, func() bool {
		st, _, err := esDo(f.c.URLs[1], http.MethodHead, "/"+f.x.Name, nil)
		return err == nil && st == http.StatusOK
	}); !ok {
		f.t.Fatalf("the instances did not create index %s within 30 s of the load's start", f.x.Name)
	}
	f.c.WaitGreen(f.t)
	f.logf("index %s is green; the load runs", f.x.Name)
}

// logf logs a step with the time of day, so that the cluster phase's
// output (go test -v in make test) shows how far a slow run got.
func (f *fleet) logf(format string, args ...any) {
	f.t.Helper()
	f.t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// watchReady asks /readyz four times a second: it must stay ready, since
// it never depends on Elasticsearch.
func (f *fleet) watchReady(ctx context.Context, in *instance) {
	for ctx.Err() == nil {
		if st := readyz(in); st != http.StatusOK {
			f.notReady.Add(1)
			f.firstBad.CompareAndSwap(nil, fmt.Sprintf("%s answered %d at %s", in.Admin, st, time.Now().Format(time.TimeOnly)))
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (f *fleet) end() { f.stop(); f.done.Wait() }

// rate is the requests per second the backends answered through the
// proxies within [from, to).
func (f *fleet) rate(from, to time.Time) float64 {
	n := 0
	for _, l := range f.loads {
		n += l.answeredBetween(from, to)
	}
	return float64(n) / to.Sub(from).Seconds()
}

// errorSessions are the sessions of the /fail requests answered within
// [from, to), at most max of them, spread over the instances.
func (f *fleet) errorSessions(from, to time.Time, max int) []string {
	var out []string
	for _, l := range f.loads {
		l.mu.Lock()
		for i, r := range l.results {
			if i%failEvery == 0 && r.backend && r.status == http.StatusInternalServerError && !r.at.Before(from) && r.at.Before(to) {
				out = append(out, strconv.FormatUint(l.session(i), 10))
			}
		}
		l.mu.Unlock()
	}
	if len(out) > max {
		step := len(out) / max
		var picked []string
		for i := 0; i < len(out) && len(picked) < max; i += step {
			picked = append(picked, out[i])
		}
		out = picked
	}
	return out
}

// findErrors runs OpenReplay's exact query (match_phrase on message, size
// 1000) for each session on the nodes that are up, until each finds its
// error document or within runs out; it returns how many were not found.
// A node that does not answer meanwhile (a restarted node while the
// cluster elects a new manager, say) is a miss to try again, not a failure.
// Each round asks one node (the next that answers, in turn) and stops at
// the deadline between two searches, so a slow node cannot stretch the
// wait past within.
func (f *fleet) findErrors(sessions []string, within time.Duration, down ...int) int {
	left := sessions
	deadline := time.Now().Add(within)
	for round := 0; ; round++ {
		left = f.notFound(left, round, down, deadline)
		if len(left) == 0 || time.Now().After(deadline) {
			return len(left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// notFound returns those of sessions whose error document OpenReplay's
// query does not find (yet), asking the round-th node that is not down and
// answers a refresh; all of them when none does.
func (f *fleet) notFound(sessions []string, round int, down []int, deadline time.Time) []string {
	n := len(f.c.URLs)
	for k := range n {
		i := (round + k) % n
		if slices.Contains(down, i+1) {
			continue
		}
		u := f.c.URLs[i]
		if st, _, err := esDo(u, http.MethodPost, "/"+f.x.Name+"/_refresh", nil); err != nil || st != http.StatusOK {
			continue
		}
		var still []string
		for j, s := range sessions {
			if time.Now().After(deadline) {
				return append(still, sessions[j:]...)
			}
			if !errorFound(u, f.x.Name, s) {
				still = append(still, s)
			}
		}
		return still
	}
	return sessions
}

// errorFound says whether OpenReplay's query finds session's documents on
// the node at u; a node that does not answer is a miss, to try again.
func errorFound(u, index, session string) bool {
	n, err := openReplayHits(u, index, session)
	return err == nil && n > 0
}

// outage keeps node n away for clusterOutage while the load runs (killed
// or stopped by takeAway), checks that the proxies' rate holds and that
// OpenReplay's query finds the errors made meanwhile, then starts it again.
func (f *fleet) outage(name string, n int, takeAway func(testing.TB, int)) {
	t := f.t
	before := time.Now()
	baseline := f.rate(before.Add(-3*time.Second), before)
	takeAway(t, n)
	gone := time.Now()
	f.logf("%s: node %d is away", name, n)
	// The errors made in the first third of the outage must be found while
	// the node is still away: the other nodes took the work. The node stays
	// away until they are, for up to recoveryBound after the failure.
	time.Sleep(clusterOutage / 3)
	sessions := f.errorSessions(gone, time.Now(), 40)
	lost := f.findErrors(sessions, time.Until(gone.Add(recoveryBound)), n)
	f.r.add(name+"_errors_found_s", seconds(time.Since(gone)))
	f.logf("%s: %d of %d error sessions found", name, len(sessions)-lost, len(sessions))
	time.Sleep(time.Until(gone.Add(clusterOutage)))
	during := f.rate(gone, time.Now())
	f.r.add(name+"_rate_before", int(baseline))
	f.r.add(name+"_rate_during", int(during))
	f.r.add(name+"_errors_found_during", fmt.Sprintf("%d/%d", len(sessions)-lost, len(sessions)))
	if lost > 0 || len(sessions) == 0 {
		t.Errorf("%s: within %v of node %d's failure, while it was away, OpenReplay's query found %d of %d error sessions made after it",
			name, recoveryBound, n, len(sessions)-lost, len(sessions))
	}
	if during < 0.9*baseline {
		t.Errorf("%s: the proxies served %.0f requests/s while node %d was away, %.0f before: more than 10%% less", name, during, n, baseline)
	}
	f.c.Start(t, n)
	f.r.add(name+"_away_s", seconds(time.Since(gone)))
	// Until its copies have caught up, the cluster has one copy of some
	// shards: a second failure now would take them away with no replica to
	// promote, which no client can help (two failures at once is a test of
	// its own, with two replicas). So the next fault waits for green.
	f.c.WaitGreen(t)
	f.r.add(name+"_green_s", seconds(time.Since(gone)))
	f.logf("%s: node %d is back; green", name, n)
}

// finish stops the load and checks, on a node that is up: every answered
// request exactly once (by request and by _id), the errors findable with
// OpenReplay's query, /readyz always ready.
func (f *fleet) finish() {
	t := f.t
	time.Sleep(2 * time.Second)
	f.stop()
	f.done.Wait()
	f.logf("load stopped; checking the index")
	f.x.url = f.c.Live(t)
	// As checkConservation, for the four loads at once: one scan of the
	// index instead of one per load.
	answered := 0
	for _, l := range f.loads {
		l.requireAllServed(f.r)
		answered += len(l.answeredIDs())
	}
	start := time.Now()
	for time.Since(start) < catchUp && f.accessDocs() < answered {
		time.Sleep(500 * time.Millisecond)
	}
	f.r.add("catch_up_s", seconds(time.Since(start)))
	time.Sleep(1500 * time.Millisecond) // retries still in flight land, so a duplicate they make is seen
	docs := f.x.docs()
	for _, l := range f.loads {
		checkExactlyOnce(t, docs, l, l.answeredIDs(), l.sentIDs(), f.r)
	}
	before := f.accessDocs()
	fresh := 0
	for _, l := range f.loads {
		fresh += len(l.send(5))
	}
	if took, ok := waitFor(60*time.Second, func() bool { return f.accessDocs() >= before+fresh }); !ok || took > livenessBound {
		t.Errorf("liveness: %d fresh requests were searchable after %v (bound %v)", fresh, took.Round(time.Millisecond), livenessBound)
	} else {
		f.r.add("liveness_s", seconds(took))
	}
	ids := map[string]bool{}
	for _, d := range docs {
		ids[d.ID] = true
	}
	f.r.add("docs", len(docs))
	if len(ids) != len(docs) {
		t.Errorf("%d documents under %d _ids", len(docs), len(ids))
	}
	sessions := f.errorSessions(time.Time{}, time.Now(), 200)
	if lost := f.findErrors(sessions, 10*time.Second); lost > 0 || len(sessions) == 0 {
		t.Errorf("after the faults, OpenReplay's query found %d of %d error sessions", len(sessions)-lost, len(sessions))
	}
	f.r.add("errors_found_after", len(sessions))
	if n := f.notReady.Load(); n > 0 {
		t.Errorf("/readyz was not ready %d times; first: %v", n, f.firstBad.Load())
	}
	for i, in := range f.ins {
		m := in.metrics()
		f.r.add(fmt.Sprintf("i%d_retried_docs", i), m["replaylink_ship_documents_retried_total"])
	}
}

// accessDocs counts the access documents in the index (the backend's own
// lines are documents too).
func (f *fleet) accessDocs() int {
	if st, _, err := esDo(f.x.url, http.MethodPost, "/"+f.x.Name+"/_refresh", nil); err != nil || st != http.StatusOK {
		return -1
	}
	st, b, err := esDo(f.x.url, http.MethodPost, "/"+f.x.Name+"/_count", map[string]any{
		"query": map[string]any{"term": map[string]any{"event.dataset": "replaylink.access"}}})
	var c struct{ Count int }
	if err != nil || st != http.StatusOK || json.Unmarshal(b, &c) != nil {
		return -1
	}
	return c.Count
}

// TestClusterNodeFailuresUnderLoad: the node every instance names first is
// killed with SIGKILL and started again, then (once the cluster is green
// again) the elected cluster manager.
func TestClusterNodeFailuresUnderLoad(t *testing.T) {
	c := estest.ClusterControl(t)
	f := startFleet(t, c, c.URLs)
	time.Sleep(4 * time.Second)
	f.outage("first_node_killed", 1, c.Kill)
	time.Sleep(3 * time.Second)
	m := c.Master(t)
	f.r.add("master_killed", m)
	f.outage("master_killed", m, c.Kill)
	f.finish()
}

// TestClusterRollingRestart: each node in turn is stopped, started and
// waited for (green) under load, as an upgrade does.
func TestClusterRollingRestart(t *testing.T) {
	c := estest.ClusterControl(t)
	f := startFleet(t, c, c.URLs)
	time.Sleep(3 * time.Second)
	for n := 1; n <= 3; n++ {
		c.Stop(t, n)
		f.logf("node %d stopped", n)
		time.Sleep(2 * time.Second)
		c.Start(t, n)
		c.WaitGreen(t)
		f.logf("node %d back; green", n)
	}
	f.finish()
}

// TestClusterNodePushesBack: one node answers every bulk request 429 for
// clusterOutage. It stands behind a local proxy that answers for it (a
// real node pushes back only when its queues are full, which cannot be
// made to last 30 s on purpose); the others are real. The instances must
// leave it alone and ship through the others meanwhile.
func TestClusterNodePushesBack(t *testing.T) {
	c := estest.ClusterControl(t)
	fp := newFaultProxy(t, c.URLs[0])
	f := startFleet(t, c, []string{fp.URL, c.URLs[1], c.URLs[2]})
	time.Sleep(3 * time.Second)
	label := func(u string) string { p, _ := url.Parse(u); return p.Host }
	nodeRequests := func() (pushing, others float64) {
		for _, in := range f.ins {
			m := in.metrics()
			pushing += m[fmt.Sprintf(`replaylink_ship_node_requests_total{node=%q}`, label(fp.URL))]
			for _, u := range c.URLs[1:] {
				others += m[fmt.Sprintf(`replaylink_ship_node_requests_total{node=%q}`, label(u))]
			}
		}
		return pushing, others
	}
	p0, o0 := nodeRequests()
	fp.set(fault{status: http.StatusTooManyRequests})
	start := time.Now()
	time.Sleep(clusterOutage / 3)
	sessions := f.errorSessions(start, time.Now(), 40)
	lost := f.findErrors(sessions, time.Until(start.Add(clusterOutage)))
	// The push-back lasts its whole clusterOutage, found or not.
	time.Sleep(time.Until(start.Add(clusterOutage)))
	fp.set(fault{})
	p1, o1 := nodeRequests()
	f.r.add("pushback_s", seconds(time.Since(start)))
	f.r.add("requests_to_pushing_node", int(p1-p0))
	f.r.add("requests_to_others", int(o1-o0))
	f.r.add("errors_found_during", fmt.Sprintf("%d/%d", len(sessions)-lost, len(sessions)))
	if lost > 0 || len(sessions) == 0 {
		t.Errorf("OpenReplay's query found %d of %d error sessions made while a node pushed back", len(sessions)-lost, len(sessions))
	}
	// Each instance asks the pushing node again after 1, 2, 4, ... s: a
	// handful of requests, against hundreds to the others.
	if p1-p0 > (o1-o0)/10 || o1-o0 == 0 {
		t.Errorf("the node answering 429 got %v requests while pushing back, the others %v: it was not backed off", p1-p0, o1-o0)
	}
	f.finish()
}
