// Command bulkload is make bench's reference shipper. It reads the documents
// of a replaylink spool directory (a copy: it never acknowledges) and sends
// them elsewhere, so each shipper in the shipping scenario gets exactly the
// same documents:
//
//	bulkload -mode raw -spool DIR -es URL      the practical limit: every bulk body is built
//	                                           (and gzipped, with -gzip) before the clock
//	                                           starts, in replaylink's format and batch size,
//	                                           then sent by -workers connections
//	bulkload -mode esutil -spool DIR -es URL   esutil.BulkIndexer with its defaults, fed
//	                                           from the spool as replaylink is
//	bulkload -mode dump -spool DIR -out FILE   the sources as JSON lines (rsyslog's input)
//	bulkload -mode count -spool DIR            how many documents the spool holds
//	bulkload -mode prepare -es URL             delete the index, install replaylink's
//	                                           template and create the index again
//	bulkload -mode indexed -es URL             refresh, then the index's document count
//
// Results are one JSON object on stdout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/klauspost/compress/gzip"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/ship"
	"github.com/replaylink/replaylink/ship/spool"
)

type options struct {
	mode       string
	spoolDir   string
	esURL      string
	index      string
	out        string
	flushBytes int
	workers    int
	gzip       bool
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "", "raw, esutil, dump, count, prepare or indexed")
	flag.StringVar(&o.spoolDir, "spool", "", "replaylink spool directory (a copy)")
	flag.StringVar(&o.esURL, "es", "", "Elasticsearch URL")
	flag.StringVar(&o.index, "index", "logs", "index")
	flag.StringVar(&o.out, "out", "", "dump: output file")
	flag.IntVar(&o.flushBytes, "flush-bytes", 5_000_000, "raw: bulk body size, as replaylink's --flush-bytes")
	flag.IntVar(&o.workers, "workers", 2, "raw: requests in flight, as replaylink's --workers")
	flag.BoolVar(&o.gzip, "gzip", false, "raw: gzip the bodies, as replaylink's --es-compression gzip (auto sends loopback plain)")
	flag.Parse()

	var (
		res any
		err error
	)
	switch o.mode {
	case "raw":
		res, err = raw(o)
	case "esutil":
		res, err = bulkIndexer(o)
	case "dump":
		res, err = dump(o)
	case "count":
		res, err = count(o)
	case "prepare":
		res, err = prepare(o)
	case "indexed":
		res, err = indexed(o)
	default:
		err = fmt.Errorf("-mode %q: want raw, esutil, dump, count, prepare or indexed", o.mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bulkload: %v\n", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// eachRecord calls fn for every document of the spool in order. id and
// source are valid only during the call.
func eachRecord(dir string, fn func(id, source []byte) error) (int, error) {
	if dir == "" {
		return 0, errors.New("-spool: give the spool directory")
	}
	if _, err := os.Stat(dir); err != nil {
		return 0, err
	}
	q, err := spool.Open(spool.Options{Dir: dir, MaxBytes: 64 << 30})
	if err != nil {
		return 0, err
	}
	defer q.Close()
	r := q.Reader()
	n := 0
	for {
		rec, ok, err := r.Next()
		if err != nil {
			return n, err
		}
		if !ok {
			return n, nil
		}
		if err := fn(rec.ID, rec.Source); err != nil {
			return n, err
		}
		n++
	}
}

func count(o options) (any, error) {
	n, err := eachRecord(o.spoolDir, func(_, _ []byte) error { return nil })
	return map[string]int{"docs": n}, err
}

func dump(o options) (any, error) {
	f, err := os.Create(o.out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := eachRecord(o.spoolDir, func(_, src []byte) error {
		buf.Write(src)
		buf.WriteByte('\n')
		if buf.Len() > 1<<20 {
			_, err := buf.WriteTo(f)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := buf.WriteTo(f); err != nil {
		return nil, err
	}
	return map[string]int{"docs": n}, f.Close()
}

type rawResult struct {
	Docs      int     `json:"docs"`
	Requests  int     `json:"requests"`
	Failed    int64   `json:"failed_items"`
	Seconds   float64 `json:"seconds"`
	DocsPerS  float64 `json:"docs_per_s"`
	WireBytes int64   `json:"wire_bytes"`
}

type body struct {
	data []byte // the body as sent
	gzip bool
	docs int
}

// raw builds every bulk body first, exactly as replaylink's batch does
// (create action with the _id, then the source; cut once FlushBytes is
// reached; gzip BestSpeed with -gzip), and then only sends.
func raw(o options) (any, error) {
	var (
		bodies []body
		cur    bytes.Buffer
		docs   int
	)
	cut := func() error {
		if !o.gzip {
			bodies = append(bodies, body{data: bytes.Clone(cur.Bytes()), docs: docs})
			cur.Reset()
			docs = 0
			return nil
		}
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
		zw.Write(cur.Bytes())
		if err := zw.Close(); err != nil {
			return err
		}
		bodies = append(bodies, body{data: zb.Bytes(), gzip: true, docs: docs})
		cur.Reset()
		docs = 0
		return nil
	}
	total, err := eachRecord(o.spoolDir, func(id, src []byte) error {
		cur.WriteString(`{"create":{"_id":`)
		idJSON, _ := json.Marshal(string(id))
		cur.Write(idJSON)
		cur.WriteString("}}\n")
		cur.Write(src)
		cur.WriteByte('\n')
		docs++
		if cur.Len() >= o.flushBytes {
			return cut()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if docs > 0 {
		if err := cut(); err != nil {
			return nil, err
		}
	}

	url := strings.TrimRight(o.esURL, "/") + "/" + o.index + "/_bulk?filter_path=errors,items.*.status,items.*.error"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.workers}, Timeout: 5 * time.Minute}
	var (
		next    atomic.Int64
		failed  atomic.Int64
		wire    atomic.Int64
		firstMu sync.Mutex
		first   error
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				n, err := sendBulk(client, url, bodies[i])
				if err != nil {
					firstMu.Lock()
					if first == nil {
						first = err
					}
					firstMu.Unlock()
					return
				}
				failed.Add(n)
				wire.Add(int64(len(bodies[i].data)))
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	s := time.Since(start).Seconds()
	return rawResult{Docs: total, Requests: len(bodies), Failed: failed.Load(), Seconds: s, DocsPerS: float64(total) / s, WireBytes: wire.Load()}, nil
}

// sendBulk posts one body and returns how many items failed.
func sendBulk(client *http.Client, url string, b body) (int64, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b.data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if b.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	respBody, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bulk answered %d: %.300s", res.StatusCode, respBody)
	}
	var r struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(respBody, &r); err != nil {
		return 0, fmt.Errorf("bulk response: %w", err)
	}
	var failed int64
	if r.Errors {
		for _, it := range r.Items {
			for _, v := range it {
				if v.Status > 299 {
					failed++
				}
			}
		}
	}
	return failed, nil
}

type esutilResult struct {
	Docs       int     `json:"docs"`
	Added      uint64  `json:"added"`
	Flushed    uint64  `json:"flushed"`
	Failed     uint64  `json:"failed"`
	Requests   uint64  `json:"requests"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// bulkIndexer ships the spool's documents with esutil.BulkIndexer and the
// client both left at their defaults (NumWorkers = CPUs, FlushBytes 5 MB,
// FlushInterval 30 s, no compression); only the action (create, with the
// document's _id) is set, as replaylink sends it.
func bulkIndexer(o options) (any, error) {
	client, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{o.esURL}})
	if err != nil {
		return nil, err
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: o.index})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	start := time.Now()
	n, err := eachRecord(o.spoolDir, func(id, src []byte) error {
		return bi.Add(ctx, esutil.BulkIndexerItem{
			Action:     "create",
			DocumentID: string(id),
			Body:       bytes.NewReader(bytes.Clone(src)),
		})
	})
	if err != nil {
		return nil, err
	}
	if err := bi.Close(ctx); err != nil {
		return nil, err
	}
	st := bi.Stats()
	return esutilResult{Docs: n, Added: st.NumAdded, Flushed: st.NumFlushed, Failed: st.NumFailed, Requests: st.NumRequests,
		Seconds: time.Since(start).Seconds(), CPUSeconds: cpuSeconds()}, nil
}

// cpuSeconds is this process's user plus system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// prepare gives every shipping run the same empty index: deleted, then
// made again with replaylink's own template.
func prepare(o options) (any, error) {
	client, err := esclient.New(esclient.Options{URLs: []string{o.esURL}})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	res, err := esapi.IndicesDeleteRequest{Index: []string{o.index}}.Do(ctx, client)
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	target := ship.Target{Index: o.index}
	if _, err := ship.InstallTemplate(ctx, client, target); err != nil {
		return nil, err
	}
	if _, err := ship.EnsureWriteTarget(ctx, client, target); err != nil {
		return nil, err
	}
	return map[string]string{"index": o.index}, nil
}

func indexed(o options) (any, error) {
	base := strings.TrimRight(o.esURL, "/") + "/" + o.index
	res, err := http.Post(base+"/_refresh", "application/json", nil)
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	res, err = http.Get(base + "/_count")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var c struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
		return nil, err
	}
	return map[string]int64{"docs": c.Count}, nil
}
