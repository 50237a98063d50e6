package ship

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/ship/spool"
)

var benchTime = time.Unix(1714564800, 0)

// benchDocs are 1000 documents of the usual size (~450 bytes).
func benchDocs() (ids, sources [][]byte) {
	for i := range 1000 {
		id, src := testDoc(i)
		ids, sources = append(ids, id), append(sources, src)
	}
	return ids, sources
}

func BenchmarkShipmentEncode(b *testing.B) {
	ids, srcs := benchDocs()
	bt := newShipment()
	var size int64
	for i := range ids {
		size += int64(len(srcs[i]))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		bt.body, bt.docs = bt.body[:0], bt.docs[:0]
		for i := range ids {
			bt.add(spool.OpCreate, ids[i], srcs[i], benchTime, false)
		}
	}
}

func BenchmarkShipmentGzip(b *testing.B) {
	ids, srcs := benchDocs()
	bt := newShipment()
	for i := range ids {
		bt.add(spool.OpCreate, ids[i], srcs[i], benchTime, false)
	}
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	var out bytes.Buffer
	b.SetBytes(int64(len(bt.body)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		gz.Reset(&out)
		gz.Write(bt.body)
		gz.Close()
	}
	b.ReportMetric(float64(len(bt.body))/float64(out.Len()), "ratio")
}

// cannedNode answers every bulk request as a healthy node would, with one
// created item per document (it counts the lines of the possibly gzipped
// body), and the root endpoint as Elasticsearch 8.
func cannedNode(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/" {
			io.WriteString(w, `{"version":{"number":"8.15.0"}}`)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		w.Write(createdResponse(bytes.Count(raw, []byte("\n")) / 2))
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// createdResponse is a healthy node's filtered answer to a bulk request of
// n documents.
func createdResponse(n int) []byte {
	var resp bytes.Buffer
	resp.WriteString(`{"errors":false,"items":[`)
	for i := range n {
		if i > 0 {
			resp.WriteByte(',')
		}
		resp.WriteString(`{"create":{"status":201}}`)
	}
	resp.WriteString("]}")
	return resp.Bytes()
}

// BenchmarkBulkLoop ships documents with replaylink's own bulk loop, in
// shipments of 1000, to a canned node, with and without gzip; one op is one
// document. Compare gzip with BenchmarkBulkIndexer.
func BenchmarkBulkLoop(b *testing.B) {
	for _, gzip := range []bool{true, false} {
		name := "none"
		if gzip {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) { benchBulkLoop(b, gzip) })
	}
}

func benchBulkLoop(b *testing.B, gzip bool) {
	srv := cannedNode(b)
	client, err := esclient.New(esclient.Options{URLs: []string{srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	var st counters
	s := &bulkDestination{client: client.Client, target: "logs", log: zerolog.Nop(), stats: &st, backoffMin: 1, backoffMax: 1, itemRetry: 1, gzip: gzip}
	w := s.deliverer()
	ids, srcs := benchDocs()
	bt := newShipment()
	b.ReportAllocs()
	docs := 0
	for b.Loop() {
		if docs%len(ids) == 0 {
			bt.body, bt.docs = bt.body[:0], bt.docs[:0]
		}
		bt.add(spool.OpCreate, ids[docs%len(ids)], srcs[docs%len(ids)], benchTime, false)
		docs++
		if len(bt.docs) == len(ids) {
			if err := w.deliver(context.Background(), bt); err != nil {
				b.Fatal(err)
			}
		}
	}
	if st.shipped.Load() == 0 && docs >= len(ids) {
		b.Fatal("nothing shipped")
	}
}

// BenchmarkBulkIndexer ships the same documents with esutil.BulkIndexer,
// gzip on as well, one worker, flushing every 1000 documents' worth.
func BenchmarkBulkIndexer(b *testing.B) {
	srv := cannedNode(b)
	client, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{srv.URL}, CompressRequestBody: true, DisableRetry: true})
	if err != nil {
		b.Fatal(err)
	}
	ids, srcs := benchDocs()
	var size int
	for _, s := range srcs {
		size += len(s) + 40
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client: client, Index: "logs", NumWorkers: 1, FlushBytes: size, FlushInterval: 1 << 62,
		FilterPath: bulkFilterPath,
	})
	if err != nil {
		b.Fatal(err)
	}
	var failed int
	b.ReportAllocs()
	docs := 0
	for b.Loop() {
		i := docs % len(ids)
		docs++
		err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action: "create", DocumentID: string(ids[i]), Body: bytes.NewReader(srcs[i]),
			OnFailure: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem, error) { failed++ },
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if failed > 0 {
		b.Fatal(fmt.Sprint(failed, " failed"))
	}
}

// BenchmarkPublish is the cost enrich pays per document: spool append
// (one write(2)) and the memory store; shipping runs on other goroutines
// (here the embedded default, writing to io.Discard).
func BenchmarkPublish(b *testing.B) {
	opts := fastOptions(b)
	opts.Output = io.Discard
	opts.SpoolMaxBytes = 256 << 20
	p, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer closeWithin(b, p, 10*time.Second)
	ids, srcs := benchDocs()
	b.SetBytes(int64(len(srcs[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := p.Publish(ids[i%len(ids)], srcs[i%len(srcs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkClassifyBulk classifies the answer to a healthy 1000-document
// bulk request (errors:false), as every delivered shipment does.
func BenchmarkClassifyBulk(b *testing.B) {
	const n = 1000
	body := createdResponse(n)
	var dst []ItemResult
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = ClassifyBulk(200, body, n, dst)
	}
	if len(dst) != n || dst[n-1].Verdict != Indexed {
		b.Fatalf("%d results, last %v", len(dst), dst[len(dst)-1].Verdict)
	}
}
