package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// The connection tests hold thousands of sockets without a goroutine each:
// the test binary runs under the race detector, which allows 8128
// goroutines at a time.

// TestTenThousandConcurrentConnections: conns client connections are open
// at once, each sends a request; every one is answered by the backend, a
// fresh client is served meanwhile, and every request is indexed once.
func TestTenThousandConcurrentConnections(t *testing.T) {
	if raceBinary {
		t.Skip("replaylink built with -race allows 8128 goroutines; this test needs one per connection")
	}
	need := uint64(conns + 2000)
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < need && lim.Max >= need {
		lim.Cur = need
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < need {
		t.Skipf("RLIMIT_NOFILE is %d (hard %d): %d connections need %d", lim.Cur, lim.Max, conns, need)
	}
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	// All the connections come from 127.0.0.1, as through a load balancer.
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, t.TempDir(),
		"--max-conns-per-client", strconv.Itoa(conns+1000))})
	l := newLoad(t, "r", rl.Listen)

	// Open every connection first.
	start := time.Now()
	cs := make([]net.Conn, conns)
	var dialErrs atomic.Int64
	parallel(16, conns, func(i int) {
		for attempt := 0; ; attempt++ {
			c, err := net.DialTimeout("tcp", rl.Listen, 10*time.Second)
			if err == nil {
				cs[i] = c
				return
			}
			if attempt == 20 {
				dialErrs.Add(1)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	r.add("connections", conns)
	r.add("dial_s", seconds(time.Since(start)))
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%d of %d connections could not be opened", n, conns)
	}

	// Then a request on each, all outstanding together.
	ids := make([]int, conns)
	for i := range ids {
		ids[i] = l.claim()
	}
	start = time.Now()
	parallel(16, conns, func(i int) {
		req := fmt.Sprintf("GET /item HTTP/1.1\r\nHost: replaylink\r\nopenReplaySession.id: %d\r\nX-Request-ID: %s\r\n\r\n", l.session(ids[i]), l.requestID(ids[i]))
		cs[i].SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(cs[i], req); err != nil {
			l.record(ids[i], result{err: err.Error()})
		}
	})
	// A fresh client is served while 10k requests are outstanding.
	fresh := l.send(5)
	parallel(16, conns, func(i int) {
		rid := l.requestID(ids[i])
		cs[i].SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(cs[i]), nil)
		if err != nil {
			l.record(ids[i], result{err: err.Error()})
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := result{status: resp.StatusCode, answered: err == nil, latency: time.Since(start)}
		res.backend = res.answered && resp.StatusCode == http.StatusOK && string(body) == "ok "+rid+"\n"
		if !res.backend {
			res.err = fmt.Sprintf("%d %q %v", resp.StatusCode, body, err)
		}
		l.record(ids[i], res)
	})
	r.add("all_answered_s", seconds(time.Since(start)))
	for _, i := range fresh {
		if res := l.result(i); !res.backend {
			t.Errorf("a fresh client was not served while %d connections were busy: %s", conns, res.err)
		}
	}
	l.requireAllServed(r)
	checkConservation(t, x, l, r, catchUp)
	rl.checkMemory(r)
}

// TestSlowClientsDoNotStarveOthers: many clients ask for a 1 MiB body and
// read it a byte at a time through a tiny receive buffer, holding the
// proxy's writes; meanwhile steady load is served as usual.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	n := sizeInt("SLOW_CLIENTS", 200, 2000)
	// The slow clients and the load share 127.0.0.1; this test is about
	// slow reading, not about the per-client limit.
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, t.TempDir(),
		"--max-conns-per-client", strconv.Itoa(n+1000))})

	slow := make([]*net.TCPConn, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", rl.Listen, 5*time.Second)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		tc := c.(*net.TCPConn)
		tc.SetReadBuffer(1024)
		fmt.Fprintf(tc, "GET /body?n=%d HTTP/1.1\r\nHost: replaylink\r\nX-Request-ID: slow-%d\r\n\r\n", 1<<20, i)
		slow = append(slow, tc)
	}
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	// One goroutine reads a byte from each slow client in turn.
	var got atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		one := make([]byte, 1)
		for {
			for _, c := range slow {
				select {
				case <-stop:
					return
				default:
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
				if k, _ := c.Read(one); k == 1 {
					got.Add(1)
				}
			}
		}
	}()

	l := newLoad(t, "r", rl.Listen)
	l.run(context.Background(), rate, sizeDuration("DURATION", 6*time.Second, 60*time.Second))
	close(stop)
	wg.Wait()
	st := l.requireAllServed(r)
	r.add("slow_clients", n)
	r.add("slow_bytes_read", got.Load())
	if got.Load() == 0 {
		t.Errorf("the slow clients read nothing: the test did not exercise slow reading")
	}
	if st.max > 5*time.Second {
		t.Errorf("a request took %v while slow clients were reading", st.max)
	}
	checkConservation(t, x, l, r, catchUp)
	rl.checkMemory(r)
}

// parallel runs f(0..n-1) on workers goroutines.
func parallel(workers, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
