package faults

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy stands between replaylink and the real search node and
// injects the faults a test asks for into bulk requests; every other
// request (set-up, template) passes through untouched.
type faultProxy struct {
	URL   string
	next  *httputil.ReverseProxy
	esURL string

	mu    sync.Mutex
	fault fault

	bulks    atomic.Int64 // bulk requests seen
	injected atomic.Int64 // bulk requests that got a fault
}

// fault is what happens to bulk requests; the zero value passes them on.
type fault struct {
	// status answers the whole request with this status (429, 503) without
	// passing it on.
	status int
	// itemStatus passes nothing on and answers 200 with every item failed
	// with this status (Elasticsearch's usual push-back: item-level 429).
	itemStatus int
	// loseResponse passes the request on, lets the node index it, then
	// closes the connection without an answer: the shipper must resend, and
	// the resend must meet its earlier copy as a 409.
	loseResponse bool
	// delay holds each bulk request this long before passing it on.
	delay time.Duration
}

func newFaultProxy(t testing.TB, esURL string) *faultProxy {
	u, err := url.Parse(esURL)
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{esURL: esURL, next: httputil.NewSingleHostReverseProxy(u)}
	fp.next.ErrorLog = nil
	srv := httptest.NewServer(http.HandlerFunc(fp.serve))
	t.Cleanup(srv.Close)
	fp.URL = srv.URL
	return fp
}

func (fp *faultProxy) set(f fault) {
	fp.mu.Lock()
	fp.fault = f
	fp.mu.Unlock()
}

func (fp *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		fp.next.ServeHTTP(w, r)
		return
	}
	fp.bulks.Add(1)
	fp.mu.Lock()
	f := fp.fault
	fp.mu.Unlock()
	if f != (fault{}) {
		fp.injected.Add(1)
	}
	switch {
	case f.status != 0:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"error":{"type":"injected_fault","reason":"fault proxy answers %d"},"status":%d}`, f.status, f.status)
		return
	case f.itemStatus != 0:
		n, err := countBulkDocs(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var b bytes.Buffer
		b.WriteString(`{"errors":true,"items":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"create":{"status":%d,"error":{"type":"es_rejected_execution_exception","reason":"injected"}}}`, f.itemStatus)
		}
		b.WriteString(`]}`)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b.Bytes())
		return
	case f.loseResponse:
		rec := httptest.NewRecorder()
		fp.next.ServeHTTP(rec, r) // the node indexes the documents
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "no hijack", http.StatusInternalServerError)
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close() // ...and the answer never arrives
		}
		return
	case f.delay > 0:
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	fp.next.ServeHTTP(w, r)
}

// countBulkDocs counts the action lines of a (gzipped) bulk body.
func countBulkDocs(r *http.Request) (int, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return 0, err
		}
		rd = zr
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	lines := 0
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines++
		}
	}
	return lines / 2, sc.Err()
}
