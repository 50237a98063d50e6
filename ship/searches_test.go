package ship

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/replaylink/replaylink/esclient"
)

// TestSearchesUsersMake indexes the example documents of
// docs/document-format.md into an index made with replaylink's template,
// on the real node, and runs the searches its users make: OpenReplay's own
// query, the guide's errors query (tags and utc_time), the session lookup,
// and what a Kibana user types (trace.id, url.path, status, level, full
// text in message and error.message). Each must find exactly the examples
// it names, so a cheaper mapping (issue 17) cannot quietly drop one. The
// payloads the template keeps in _source only are checked too: found by
// the document, never searched.
func TestSearchesUsersMake(t *testing.T) {
	n := realNode(t)
	c, err := esclient.New(esclient.Options{URLs: []string{n.url}})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Index: testIndex(t, n)}
	ctx := context.Background()
	if _, err := InstallTemplate(ctx, c, target); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureWriteTarget(ctx, c, target); err != nil {
		t.Fatal(err)
	}

	examples := documentExamples(t)
	if len(examples) != 3 {
		t.Fatalf("docs/document-format.md has %d JSON examples, want the access, the merged error and the sessionless one", len(examples))
	}
	var bulk bytes.Buffer
	for i, doc := range examples {
		fmt.Fprintf(&bulk, `{"create":{"_id":"example-%d"}}`+"\n%s\n", i, bytes.Join(bytes.Fields(doc), []byte(" ")))
	}
	if status, b := n.do("POST", "/"+target.Index+"/_bulk?refresh=true", bulk.String()); status != 200 || bytes.Contains(b, []byte(`"errors":true`)) {
		t.Fatalf("indexing the examples: %d %s", status, b)
	}

	const session = "7394857349857"
	for _, q := range []struct {
		who, query string
		want       []int // the examples found, by their order in the document
		notIndexed bool  // the node refuses the query: the field is in _source only
	}{
		{"OpenReplay (match_phrase on message, 1000 hits)", `{"size":1000,"query":{"match_phrase":{"message":"openReplaySession.id=` + session + `"}}}`, []int{0, 1}, false},
		{"OpenReplay's guide (errors by tags and utc_time)", `{"query":{"bool":{"filter":[{"term":{"tags":"error"}},{"range":{"utc_time":{"gte":"2024-05-01T09:00:00Z","lte":"2024-05-01T11:00:00Z"}}}]}}}`, []int{1}, false},
		{"lookup (the session, newest first)", `{"size":1000,"query":{"term":{"openReplaySession.id":"` + session + `"}},"sort":[{"@timestamp":"desc"}]}`, []int{1, 0}, false},
		{"Kibana: trace.id", `{"query":{"term":{"trace.id":"4bf92f3577b34da6a3ce929d0e0e4736"}}}`, []int{0}, false},
		{"Kibana: url.path", `{"query":{"term":{"url.path":"/api/cart"}}}`, []int{1}, false},
		{"Kibana: status", `{"query":{"range":{"http.response.status_code":{"gte":500}}}}`, []int{1}, false},
		{"Kibana: level", `{"query":{"term":{"level":"warning"}}}`, []int{2}, false},
		{"Kibana: full text in message", `{"query":{"match":{"message":"KeyError"}}}`, []int{1}, false},
		{"Kibana: full text in error.message", `{"query":{"match":{"error.message":"cart_id"}}}`, []int{1}, false},
		{"Kibana: free text (every field)", `{"query":{"query_string":{"query":"KeyError"}}}`, []int{1}, false},
		{"Kibana: level counts (aggregation)", `{"size":0,"aggs":{"levels":{"terms":{"field":"level"}}}}`, nil, false},
		// Kept in _source, not indexed: not found by its words.
		{"not indexed: error.stack_trace", `{"query":{"match":{"error.stack_trace":"api_cart"}}}`, nil, true},
	} {
		status, b := n.do("POST", "/"+target.Index+"/_search", q.query)
		var res struct {
			Hits struct {
				Hits []struct {
					ID     string          `json:"_id"`
					Source json.RawMessage `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
			Aggregations struct {
				Levels struct {
					Buckets []struct{ Key string } `json:"buckets"`
				} `json:"levels"`
			} `json:"aggregations"`
		}
		if q.notIndexed {
			if status != 400 || !bytes.Contains(b, []byte("not indexed")) {
				t.Errorf("%s: %d %s, want the node to refuse it (not indexed)", q.who, status, b)
			}
			continue
		}
		if status != 200 || json.Unmarshal(b, &res) != nil {
			t.Errorf("%s: %d %s", q.who, status, b)
			continue
		}
		var got []int
		for _, h := range res.Hits.Hits {
			var i int
			fmt.Sscanf(h.ID, "example-%d", &i)
			got = append(got, i)
		}
		if fmt.Sprint(got) != fmt.Sprint(q.want) {
			t.Errorf("%s found examples %v, want %v", q.who, got, q.want)
		}
		if q.who == "Kibana: level counts (aggregation)" && len(res.Aggregations.Levels.Buckets) != 3 {
			t.Errorf("%s: %s", q.who, b)
		}
	}
	// The merged error document comes back whole, its stack trace too.
	if _, b := n.do("GET", "/"+target.Index+"/_doc/example-1", ""); !bytes.Contains(b, []byte(`in api_cart`)) {
		t.Errorf("the error document's stack trace is not in its _source: %s", b)
	}
}

// documentExamples returns the ```json blocks of docs/document-format.md.
func documentExamples(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../docs/document-format.md")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(b, -1) {
		if !json.Valid(m[1]) {
			t.Fatalf("an example of docs/document-format.md is not JSON:\n%s", m[1])
		}
		out = append(out, m[1])
	}
	return out
}
