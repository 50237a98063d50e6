// Command nullbulk is make bench's null bulk endpoint: it answers every
// _bulk request as a healthy Elasticsearch 8 node would (one successful item
// per document, "errors":false) without indexing anything, so a shipper's own
// CPU per document can be measured with the search engine out of the way.
// Like Elasticsearch, it leaves "took" out when the request's filter_path
// does not name it: replaylink asks for errors and items only, and reads
// such an answer with a byte scan, where "took" sends it to encoding/json.
//
//	nullbulk -listen 127.0.0.1:9460
//
// GET /_nullbulk/stats answers {"docs":N,"requests":M,"bytes":B}: documents
// and bulk requests seen so far, and the request bytes on the wire. Every
// other request is answered 200 {} (template and index checks).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
)

var (
	docs, requests, wireBytes atomic.Int64
	bufPool                   = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9460", "address to listen on")
	flag.Parse()
	http.HandleFunc("/", handle)
	log.Fatal(http.ListenAndServe(*listen, nil))
}

func handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/_nullbulk/stats":
		fmt.Fprintf(w, `{"docs":%d,"requests":%d,"bytes":%d}`, docs.Load(), requests.Load(), wireBytes.Load())
	case strings.HasSuffix(r.URL.Path, "/_bulk"):
		bulk(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		io.WriteString(w, `{"name":"nullbulk","cluster_name":"nullbulk","version":{"number":"8.15.0","build_flavor":"default"},"tagline":"You Know, for Search"}`)
	default:
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{}`)
	}
}

// bulk counts the action lines of the body (decompressing it if needed) and
// answers one item per action, keyed like the first action (create, index).
func bulk(w http.ResponseWriter, r *http.Request) {
	body := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(body)
	body.Reset()
	counted := &countingReader{r: r.Body}
	var src io.Reader = counted
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(counted)
		if err != nil {
			http.Error(w, `{"error":{"type":"parse_exception","reason":"bad gzip"}}`, http.StatusBadRequest)
			return
		}
		src = zr
	}
	if _, err := body.ReadFrom(src); err != nil {
		http.Error(w, `{"error":{"type":"parse_exception","reason":"unreadable body"}}`, http.StatusBadRequest)
		return
	}
	raw := body.Bytes()
	action := "create"
	if bytes.HasPrefix(raw, []byte(`{"index"`)) {
		action = "index"
	}
	// Each document is an action line and a source line.
	n := bytes.Count(raw, []byte("\n"))
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		n++
	}
	n /= 2
	docs.Add(int64(n))
	requests.Add(1)
	wireBytes.Add(counted.n)

	out := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(out)
	out.Reset()
	item := `{"` + action + `":{"status":201}}`
	if fp := r.URL.Query().Get("filter_path"); fp == "" || strings.Contains(fp, "took") {
		out.WriteString(`{"took":1,`)
	} else {
		out.WriteByte('{')
	}
	out.WriteString(`"errors":false,"items":[`)
	for i := range n {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(item)
	}
	out.WriteString("]}")
	w.Write(out.Bytes())
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
