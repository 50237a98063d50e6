package ship

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// bulkRequest is what the stand-in node received in one bulk request.
type bulkRequest struct {
	encoding string // Content-Encoding
	body     []byte // as it came over the wire
}

// recordingNode is a stand-in for Elasticsearch that hands over each bulk
// request and answers it as a healthy node would. A stand-in, not the
// shared dev node, because these tests are about the shape of the request
// (its header and body bytes), which a real node does not show.
func recordingNode(t *testing.T) (*httptest.Server, <-chan bulkRequest) {
	got := make(chan bulkRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if !strings.HasSuffix(r.URL.Path, "/_bulk") {
			io.WriteString(w, `{"version":{"number":"8.15.0"}}`)
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := bulkRequest{encoding: r.Header.Get("Content-Encoding"), body: raw}
		plain := raw
		if req.encoding == "gzip" {
			if plain, err = gunzip(raw); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		select {
		case got <- req:
		default: // the test reads the first few only
		}
		w.Write(createdResponse(bytes.Count(plain, []byte("\n")) / 2))
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func TestBulkRequestCompression(t *testing.T) {
	for _, tc := range []struct {
		compression Compression
		wantGzip    bool
	}{
		{CompressionGzip, true},
		{CompressionNone, false},
		{CompressionAuto, false}, // the stand-in listens on 127.0.0.1
	} {
		t.Run(tc.compression.String(), func(t *testing.T) {
			srv, got := recordingNode(t)
			opts := fastOptions(t, srv.URL)
			opts.Compression = tc.compression
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			publishN(t, p, 0, 3)
			closeWithin(t, p, 20*time.Second)
			if len(got) == 0 {
				t.Fatal("Close returned and no bulk request came")
			}
			var ndjson []byte // of every request: the reader may have cut more than one shipment
			for len(got) > 0 {
				req := <-got
				body := req.body
				switch {
				case tc.wantGzip && req.encoding != "gzip":
					t.Fatalf("Content-Encoding %q, want gzip", req.encoding)
				case tc.wantGzip:
					if body, err = gunzip(req.body); err != nil {
						t.Fatalf("body does not gunzip: %v", err)
					}
				case req.encoding != "":
					t.Fatalf("Content-Encoding %q on a plain body", req.encoding)
				}
				ndjson = append(ndjson, body...)
			}
			for i := range 3 {
				id, src := testDoc(i)
				line := `{"create":{"_id":"` + string(id) + `"}}` + "\n" + string(src) + "\n"
				if !bytes.Contains(ndjson, []byte(line)) {
					t.Errorf("body lacks document %d:\n%s", i, ndjson)
				}
			}
			if st := p.Stats(); st.Shipped != 3 {
				t.Errorf("shipped %d of 3", st.Shipped)
			}
		})
	}
}

func TestCompressionGzipFor(t *testing.T) {
	for _, tc := range []struct {
		c    Compression
		urls []string
		want bool
	}{
		{CompressionAuto, []string{"http://127.0.0.1:9200"}, false},
		{CompressionAuto, []string{"http://127.8.9.10:9200", "https://[::1]:9200", "http://LocalHost:9200"}, false},
		{CompressionAuto, []string{"http://elastic:pw@localhost"}, false},
		{CompressionAuto, []string{"http://127.0.0.1:9200", "https://es.example.com:9200"}, true},
		{CompressionAuto, []string{"http://10.0.0.5:9200"}, true},
		{CompressionAuto, []string{"http://localhost.example.com:9200"}, true},
		{CompressionAuto, []string{"http://[::2]:9200"}, true},
		{CompressionGzip, []string{"http://127.0.0.1:9200"}, true},
		{CompressionNone, []string{"https://es.example.com:9200"}, false},
	} {
		if got := tc.c.gzipFor(tc.urls); got != tc.want {
			t.Errorf("%s for %v: gzip %v; want %v", tc.c, tc.urls, got, tc.want)
		}
	}
}

func TestCompressionRefusesUnknown(t *testing.T) {
	var c Compression
	if err := c.UnmarshalText([]byte("zstd")); err == nil || !strings.Contains(err.Error(), `"zstd" is not one of auto, gzip, none`) {
		t.Errorf("--es-compression zstd: %v", err)
	}
	if err := c.UnmarshalText([]byte("gzip")); err != nil || c != CompressionGzip {
		t.Errorf("--es-compression gzip: %v, %v", c, err)
	}
	srv, _ := recordingNode(t)
	opts := fastOptions(t, srv.URL)
	opts.Compression = Compression(9) // made by a conversion, never by text
	p, err := New(opts)
	if err == nil {
		closeWithin(t, p, 5*time.Second)
		t.Fatal("New took Compression(9)")
	}
	for _, want := range []string{"--es-compression", "auto, gzip, none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// The dev node, being on loopback, gets plain bodies under auto: this keeps
// a real node reading both encodings.
func TestCompressionAgainstNode(t *testing.T) {
	n := realNode(t)
	for _, c := range []Compression{CompressionGzip, CompressionNone} {
		t.Run(string(c), func(t *testing.T) {
			opts := fastOptions(t, n.url)
			opts.Index, opts.InstallTemplate, opts.Compression = testIndex(t, n), true, c
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			const N = 500
			publishN(t, p, 0, N)
			closeWithin(t, p, 30*time.Second)
			if got := n.count(opts.Index); got != N {
				t.Fatalf("index holds %d documents, want %d", got, N)
			}
			if st := p.Stats(); st.Shipped != N || st.DeadLettered != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
