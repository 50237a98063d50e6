package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends numbered requests through replaylink at a steady rate. Request
// i carries session sessionBase+i in the openReplaySession.id header and
// X-Request-ID prefix-i, so every access document names the request it
// stands for. The target can change while it runs (a restarted replaylink
// listens on a new port).
type load struct {
	t           testing.TB
	prefix      string
	sessionBase uint64
	target      atomic.Pointer[string]
	client      *http.Client

	// decorate, when set, changes request i before it is sent.
	decorate func(i int, req *http.Request)

	mu      sync.Mutex
	results map[int]result
	next    int
	absent  map[string]bool // requests that must not be indexed (refused for good)
}

// result is what the client saw of one request.
type result struct {
	status   int  // 0: no response (connection refused, reset, timeout)
	answered bool // a complete response arrived
	backend  bool // it is the backend's "ok <id>" answer
	// upstreamError: a clean answer the proxy made for an upstream failure
	// (502/503/504, text/plain, naming the request id).
	upstreamError bool
	err           string // why there was no complete response
	latency       time.Duration
	at            time.Time // when it ended
}

func newLoad(t testing.TB, prefix string, target string) *load {
	l := &load{
		t:           t,
		prefix:      prefix,
		sessionBase: 7_000_000_000_000 + uint64(time.Now().UnixNano()%1_000_000_000)*1000,
		results:     map[int]result{},
		client: &http.Client{
			Timeout: 15 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
	l.setTarget(target)
	t.Cleanup(l.client.CloseIdleConnections)
	return l
}

func (l *load) setTarget(addr string) {
	l.target.Store(&addr)
	l.client.CloseIdleConnections()
}

func (l *load) requestID(i int) string { return l.prefix + "-" + strconv.Itoa(i) }
func (l *load) session(i int) uint64   { return l.sessionBase + uint64(i) }
func (l *load) index(rid string) (int, bool) {
	s, ok := strings.CutPrefix(rid, l.prefix+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// run sends rate requests per second for d (or until ctx ends), from as
// many goroutines as needed, and returns when every request has its result.
func (l *load) run(ctx context.Context, rate int, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	const tick = 10 * time.Millisecond
	ids := make(chan int, 4*rate+64)
	var wg sync.WaitGroup
	workers := min(max(rate/20, 4), 128)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				l.one(i)
			}
		}()
	}
	ticker := time.NewTicker(tick)
	start := time.Now()
	sent := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			due := int(float64(rate) * time.Since(start).Seconds())
			for ; sent < due && ctx.Err() == nil; sent++ {
				ids <- l.claim() // the workers always drain: requests time out
			}
		}
	}
	ticker.Stop()
	close(ids)
	wg.Wait()
}

// send sends n requests now, from a few goroutines, and waits for them.
func (l *load) send(n int) []int {
	var idx []int
	for range n {
		idx = append(idx, l.claim())
	}
	var wg sync.WaitGroup
	ch := make(chan int)
	for range min(n, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				l.one(i)
			}
		}()
	}
	for _, i := range idx {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return idx
}

func (l *load) claim() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := l.next
	l.next++
	return i
}

func (l *load) one(i int) {
	rid := l.requestID(i)
	req, _ := http.NewRequest(http.MethodGet, "http://"+*l.target.Load()+"/item?i="+strconv.Itoa(i), nil)
	req.Header.Set("openReplaySession.id", strconv.FormatUint(l.session(i), 10))
	req.Header.Set("X-Request-ID", rid)
	if l.decorate != nil {
		l.decorate(i, req)
	}
	start := time.Now()
	var r result
	resp, err := l.client.Do(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
		if err == nil {
			r.answered = true
			r.backend = resp.StatusCode == http.StatusOK && string(body) == "ok "+rid+"\n" ||
				req.URL.Path == "/fail" && resp.StatusCode == http.StatusInternalServerError && string(body) == failBody
			r.upstreamError = isCleanUpstreamError(resp, body, rid)
			if !r.backend {
				r.err = fmt.Sprintf("%d %q", resp.StatusCode, tail(string(body), 200))
			}
		}
	}
	if err != nil {
		r.err = err.Error()
	}
	r.at = time.Now()
	r.latency = r.at.Sub(start)
	l.record(i, r)
}

// record stores the result of request i.
func (l *load) record(i int, r result) {
	l.mu.Lock()
	l.results[i] = r
	l.mu.Unlock()
}

// result returns what request i got.
func (l *load) result(i int) result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.results[i]
}

// failBody is what testbackend's /fail answers, with status 500.
const failBody = "<script>alert('body')</script> backend failed"

// isCleanUpstreamError recognises the proxy's own answer to an upstream
// failure: the status, a short text naming it, and the request id.
func isCleanUpstreamError(resp *http.Response, body []byte, rid string) bool {
	prefix := map[int]string{
		http.StatusBadGateway:         "502 Bad Gateway",
		http.StatusServiceUnavailable: "503 Service Unavailable",
		http.StatusGatewayTimeout:     "504 Gateway Timeout",
	}[resp.StatusCode]
	return prefix != "" && strings.HasPrefix(string(body), prefix) &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") &&
		resp.Header.Get("X-Request-ID") == rid && strings.Contains(string(body), "request id: "+rid)
}

// answeredBetween counts the requests answered by the backend that ended
// within [from, to).
func (l *load) answeredBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.backend && !r.at.Before(from) && r.at.Before(to) {
			n++
		}
	}
	return n
}

// stats summarises the results so far.
type loadStats struct {
	sent, answered, backendOK, noResponse int
	upstreamErrors                        int
	byStatus                              map[int]int
	p50, p99, max                         time.Duration
	firstErrors                           []string
}

func (l *load) stats() loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := loadStats{sent: len(l.results), byStatus: map[int]int{}}
	var lat []time.Duration
	for _, r := range l.results {
		if r.answered {
			s.answered++
			s.byStatus[r.status]++
			lat = append(lat, r.latency)
		} else {
			s.noResponse++
		}
		if r.upstreamError {
			s.upstreamErrors++
		}
		if r.backend {
			s.backendOK++
		} else if len(s.firstErrors) < 5 && !r.upstreamError {
			s.firstErrors = append(s.firstErrors, r.err)
		}
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		s.p50, s.p99, s.max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	return s
}

// expectAbsent marks a request whose document Elasticsearch refuses for
// good: conservation then wants it in the dead-letter file, not the index.
func (l *load) expectAbsent(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.absent == nil {
		l.absent = map[string]bool{}
	}
	l.absent[l.requestID(i)] = true
}

func (l *load) isAbsent(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.absent[id]
}

// answeredIDs are the requests whose complete response reached the client
// and whose document belongs in the index.
func (l *load) answeredIDs() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]bool{}
	for i, r := range l.results {
		if r.answered && !l.absent[l.requestID(i)] {
			m[l.requestID(i)] = true
		}
	}
	return m
}

// sentIDs are all requests sent, answered or not.
func (l *load) sentIDs() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]bool{}
	for i := range l.results {
		m[l.requestID(i)] = true
	}
	return m
}

// requireAnsweredClean fails unless every answer the client got is the
// backend's, or (allowUpstreamErrors) the proxy's clean answer to an
// upstream failure. Requests without an answer (replaylink was killed or
// stopping) are counted, not failed.
func (l *load) requireAnsweredClean(r *report, allowUpstreamErrors bool) loadStats {
	l.t.Helper()
	s := l.stats()
	r.add("requests", s.sent)
	r.add("no_response", s.noResponse)
	if allowUpstreamErrors {
		r.add("upstream_errors", s.upstreamErrors)
	}
	r.add("p99_ms", s.p99.Milliseconds())
	bad := s.answered - s.backendOK
	if allowUpstreamErrors {
		bad -= s.upstreamErrors
	}
	if bad != 0 {
		l.t.Errorf("%d of %d answers are neither the backend's nor a clean upstream error (statuses %v); first: %q",
			bad, s.answered, s.byStatus, s.firstErrors)
	}
	return s
}

// requireAllServed fails unless every request got the backend's own answer:
// the proxy made no error of its own (no 5xx, no refused connection).
func (l *load) requireAllServed(r *report) loadStats {
	l.t.Helper()
	s := l.stats()
	r.add("requests", s.sent)
	r.add("p99_ms", s.p99.Milliseconds())
	if s.backendOK != s.sent {
		l.t.Errorf("%d of %d requests did not get the backend's answer (statuses %v, %d without a response); first: %q",
			s.sent-s.backendOK, s.sent, s.byStatus, s.noResponse, s.firstErrors)
	}
	return s
}
