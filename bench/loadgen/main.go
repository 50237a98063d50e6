// Command loadgen is make bench's HTTP/1.1 load generator for loopback
// targets. It speaks just enough HTTP for a GET over keep-alive connections
// (Content-Length and chunked bodies), so its own cost per request stays
// small next to the proxy under test.
//
// Three modes:
//
//	loadgen -url U -rate R -duration D    open loop: request i is due at start+i/R whatever
//	                                      happened before; latency is counted from that due
//	                                      time, so a stall is not hidden (no coordinated omission)
//	loadgen -url U -n N                   closed loop: N requests as fast as -conns allow
//	loadgen -url U -idle N                open N keep-alive connections, send one request on
//	                                      each, print "ready", hold them until SIGINT/SIGTERM
//
// The result is one JSON object on stdout (see result); with -timeline the
// open loop also reports each second (completions, errors, p99).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	url      *url.URL
	rate     float64
	duration time.Duration
	n        int64
	idle     int
	conns    int
	timeout  time.Duration
	timeline bool
	request  []byte
	// bare is request without the -H headers, sent instead of it for
	// bareShare of the requests (spread evenly over each 100).
	bare      []byte
	bareShare float64
	sent      *atomic.Uint64
}

func main() {
	var (
		c       config
		rawURL  string
		headers headerList
	)
	flag.StringVar(&rawURL, "url", "", "target, e.g. http://127.0.0.1:8080/api/orders?page=2")
	flag.Float64Var(&c.rate, "rate", 0, "open loop: requests per second")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "open loop: how long")
	flag.Int64Var(&c.n, "n", 0, "closed loop: number of requests")
	flag.IntVar(&c.idle, "idle", 0, "idle mode: connections to open and hold")
	flag.IntVar(&c.conns, "conns", 64, "connections (open and closed loop)")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-request read/write timeout")
	flag.BoolVar(&c.timeline, "timeline", false, "open loop: add a per-second timeline")
	flag.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	flag.Float64Var(&c.bareShare, "bare-share", 0, "share of the requests (0 to 1) sent without the -H headers, e.g. 0.8 for 80% sessionless traffic")
	flag.Parse()

	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fatalf("-url %q: want http://host:port/path", rawURL)
	}
	c.url = u
	c.request = buildRequest(u, headers)
	c.bare, c.sent = buildRequest(u, nil), new(atomic.Uint64)
	if c.bareShare < 0 || c.bareShare > 1 {
		fmt.Fprintf(os.Stderr, "loadgen: -bare-share %g: want 0 to 1\n", c.bareShare)
		os.Exit(2)
	}
	raiseFileLimit()

	var res *result
	switch {
	case c.idle > 0:
		res, err = holdIdle(c)
	case c.rate > 0:
		res, err = openLoop(c)
	case c.n > 0:
		res, err = closedLoop(c)
	default:
		fatalf("give -rate (open loop), -n (closed loop) or -idle")
	}
	if err != nil {
		fatalf("%v", err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.Encode(res)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
	os.Exit(2)
}

// raiseFileLimit lifts the soft descriptor limit to the hard one: idle mode
// holds thousands of connections.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func buildRequest(u *url.URL, headers []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: replaylink-bench-loadgen\r\n", u.RequestURI(), u.Host)
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// result is what loadgen prints. Latencies are in microseconds.
type result struct {
	Mode        string    `json:"mode"`
	TargetRate  float64   `json:"target_rate,omitempty"`
	Seconds     float64   `json:"seconds"`
	OK          int64     `json:"ok"`
	Errors      int64     `json:"errors"`
	Non2xx      int64     `json:"non_2xx"`
	RPS         float64   `json:"rps"`
	P50         float64   `json:"p50_us"`
	P90         float64   `json:"p90_us"`
	P99         float64   `json:"p99_us"`
	P999        float64   `json:"p999_us"`
	Max         float64   `json:"max_us"`
	FirstError  string    `json:"first_error,omitempty"`
	Connections int       `json:"connections,omitempty"`
	Timeline    []second  `json:"timeline,omitempty"`
	latencies   []float64 // all samples, µs
}

type second struct {
	T      int     `json:"t"`
	OK     int64   `json:"ok"`
	Errors int64   `json:"errors"`
	P99    float64 `json:"p99_us"`
}

// conn is one keep-alive connection, redialed after an error or a close.
type conn struct {
	cfg *config
	nc  net.Conn
	br  *bufio.Reader
}

func (c *conn) do() (status int, err error) {
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.cfg.url.Host, c.cfg.timeout)
		if err != nil {
			return 0, err
		}
		c.nc = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 16<<10)
		} else {
			c.br.Reset(nc)
		}
	}
	c.nc.SetDeadline(time.Now().Add(c.cfg.timeout))
	req := c.cfg.request
	if c.cfg.bareShare > 0 && float64(c.cfg.sent.Add(1)%100) < c.cfg.bareShare*100 {
		req = c.cfg.bare
	}
	if _, err := c.nc.Write(req); err != nil {
		c.close()
		return 0, err
	}
	status, keep, err := readResponse(c.br)
	if err != nil {
		c.close()
		return 0, err
	}
	if !keep {
		c.close()
	}
	return status, nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

var errMalformed = errors.New("malformed response")

// readResponse reads one response and discards its body. keep says whether
// the connection may carry another request.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	keep = true
	length, chunked := int64(-1), false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(h) <= 2 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			continue
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return 0, false, errMalformed
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			keep = !asciiEqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		err = discardChunked(br)
	case length >= 0:
		_, err = br.Discard(int(length))
	case status == 204 || status == 304 || status < 200:
	default: // body until close
		_, err = io.Copy(io.Discard, br)
		keep = false
	}
	return status, keep, err
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText := bytes.TrimSpace(line)
		if i := bytes.IndexByte(sizeText, ';'); i >= 0 {
			sizeText = sizeText[:i]
		}
		size, err := strconv.ParseInt(string(sizeText), 16, 64)
		if err != nil {
			return errMalformed
		}
		if size == 0 { // trailers, then the empty line
			for {
				t, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// worker results, merged at the end.
type tally struct {
	lat        []float64
	ok, errs   int64
	non2xx     int64
	firstError string
	perSec     map[int]*secTally
}

type secTally struct {
	ok, errs int64
	lat      []float64
}

func (t *tally) record(status int, err error, lat time.Duration, sec int, timeline bool) {
	us := float64(lat) / float64(time.Microsecond)
	var st *secTally
	if timeline {
		st = t.perSec[sec]
		if st == nil {
			st = &secTally{}
			t.perSec[sec] = st
		}
	}
	if err != nil {
		t.errs++
		if t.firstError == "" {
			t.firstError = err.Error()
		}
		if st != nil {
			st.errs++
		}
		return
	}
	t.ok++
	if status < 200 || status > 299 {
		t.non2xx++
	}
	t.lat = append(t.lat, us)
	if st != nil {
		st.ok++
		st.lat = append(st.lat, us)
	}
}

// openLoop sends request i at start + i/rate from whichever connection is
// free; with every connection busy, due requests queue and their waiting
// counts in their latency.
func openLoop(c config) (*result, error) {
	interval := time.Duration(float64(time.Second) / c.rate)
	total := int64(c.duration / interval)
	var next atomic.Int64
	start := time.Now().Add(50 * time.Millisecond)
	stop := make(chan struct{})
	go stopOnSignal(stop)
	tallies := make([]*tally, c.conns)
	var wg sync.WaitGroup
	for w := range c.conns {
		t := &tally{perSec: map[int]*secTally{}}
		tallies[w] = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn := &conn{cfg: &c}
			defer cn.close()
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-stop:
						return
					}
				} else {
					select {
					case <-stop:
						return
					default:
					}
				}
				status, err := cn.do()
				now := time.Now()
				t.record(status, err, now.Sub(due), int(due.Sub(start)/time.Second), c.timeline)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := merge(tallies, "open", elapsed, c.timeline)
	res.TargetRate = c.rate
	return res, nil
}

// stopOnSignal closes stop on SIGINT or SIGTERM: the harness may end an
// open-loop run early (the outage scenario) and still wants the result.
func stopOnSignal(stop chan struct{}) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	close(stop)
}

func closedLoop(c config) (*result, error) {
	var next atomic.Int64
	tallies := make([]*tally, c.conns)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c.conns {
		t := &tally{}
		tallies[w] = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn := &conn{cfg: &c}
			defer cn.close()
			for next.Add(1) <= c.n {
				t0 := time.Now()
				status, err := cn.do()
				t.record(status, err, time.Since(t0), 0, false)
			}
		}()
	}
	wg.Wait()
	return merge(tallies, "closed", time.Since(start), false), nil
}

func merge(tallies []*tally, mode string, elapsed time.Duration, timeline bool) *result {
	res := &result{Mode: mode, Seconds: elapsed.Seconds()}
	secs := map[int]*secTally{}
	for _, t := range tallies {
		res.OK += t.ok
		res.Errors += t.errs
		res.Non2xx += t.non2xx
		res.latencies = append(res.latencies, t.lat...)
		if res.FirstError == "" {
			res.FirstError = t.firstError
		}
		for s, st := range t.perSec {
			m := secs[s]
			if m == nil {
				m = &secTally{}
				secs[s] = m
			}
			m.ok += st.ok
			m.errs += st.errs
			m.lat = append(m.lat, st.lat...)
		}
	}
	res.RPS = float64(res.OK) / elapsed.Seconds()
	slices.Sort(res.latencies)
	res.P50 = quantile(res.latencies, 0.50)
	res.P90 = quantile(res.latencies, 0.90)
	res.P99 = quantile(res.latencies, 0.99)
	res.P999 = quantile(res.latencies, 0.999)
	if n := len(res.latencies); n > 0 {
		res.Max = res.latencies[n-1]
	}
	if timeline {
		keys := make([]int, 0, len(secs))
		for s := range secs {
			keys = append(keys, s)
		}
		slices.Sort(keys)
		for _, s := range keys {
			st := secs[s]
			slices.Sort(st.lat)
			res.Timeline = append(res.Timeline, second{T: s, OK: st.ok, Errors: st.errs, P99: quantile(st.lat, 0.99)})
		}
	}
	return res
}

// quantile of sorted samples (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// holdIdle opens c.idle connections, completes one request on each so the
// proxy has set up its per-connection state, and holds them open.
func holdIdle(c config) (*result, error) {
	conns := make([]*conn, 0, c.idle)
	defer func() {
		for _, cn := range conns {
			cn.close()
		}
	}()
	start := time.Now()
	var (
		mu    sync.Mutex
		errs  int64
		first string
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	for range 16 { // open them 16 at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(c.idle) {
				cn := &conn{cfg: &c}
				status, err := cn.do()
				if err == nil && cn.nc == nil {
					err = errors.New("server closed the keep-alive connection")
				}
				mu.Lock()
				if err != nil || status != 200 {
					errs++
					if first == "" {
						first = fmt.Sprint(status, err)
					}
					cn.close()
				} else {
					cn.nc.SetDeadline(time.Time{})
					conns = append(conns, cn)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "ready %d\n", len(conns))
	stop := make(chan struct{})
	go stopOnSignal(stop)
	<-stop
	// Count the connections the server closed while they were idle.
	alive := 0
	for _, cn := range conns {
		cn.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := cn.br.Peek(1); errors.Is(err, os.ErrDeadlineExceeded) {
			alive++
		}
	}
	return &result{Mode: "idle", Seconds: time.Since(start).Seconds(), OK: int64(len(conns)), Errors: errs,
		FirstError: first, Connections: alive}, nil
}
