package ship

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/esclient"
)

func TestInstallTemplateIsIdempotent(t *testing.T) {
	n := realNode(t)
	c, err := esclient.New(esclient.Options{URLs: []string{n.url}})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Index: testIndex(t, n)}
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		changed, err := InstallTemplate(ctx, c, target)
		if err != nil || changed != want {
			t.Fatalf("InstallTemplate #%d: changed %v err %v, want changed %v", i+1, changed, err, want)
		}
		changed, err = EnsureWriteTarget(ctx, c, target)
		if err != nil || changed != want {
			t.Fatalf("EnsureWriteTarget #%d: changed %v err %v, want changed %v", i+1, changed, err, want)
		}
	}
	_, b := n.do("GET", "/"+target.Index+"/_mapping", "")
	for _, want := range []string{`"dynamic":"false"`, `"message":{"type":"text","norms":false}`, `"utc_time":{"type":"date"}`,
		`"status_code":{"type":"integer"}`, `"duration":{"type":"long"}`, `"stack_trace":{"type":"text","index":false}`,
		`"trace":{"properties":{"id":{"type":"keyword","doc_values":false}}}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("mapping of the new index lacks %s: %s", want, b)
		}
	}
	// A changed template (an older replaylink's, say) is replaced.
	n.do("PUT", "/_index_template/"+target.TemplateName(), `{"index_patterns":["`+target.Index+`"],"priority":200,"_meta":{"digest":"old"}}`)
	if changed, err := InstallTemplate(ctx, c, target); err != nil || !changed {
		t.Fatalf("InstallTemplate over an outdated template: changed %v err %v", changed, err)
	}
}

// TestTemplateReplicasSuitTheCluster: on the real node (one data node) the
// template asks for no replica, which could never be placed; a fixed
// number is taken as it is.
func TestTemplateReplicasSuitTheCluster(t *testing.T) {
	n := realNode(t)
	c, err := esclient.New(esclient.Options{URLs: []string{n.url}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		replicas Replicas
		want     string
	}{{Replicas{}, "0"}, {FixedReplicas(2), "2"}} {
		target := Target{Index: testIndex(t, n), Replicas: tc.replicas}
		if _, err := InstallTemplate(t.Context(), c, target); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureWriteTarget(t.Context(), c, target); err != nil {
			t.Fatal(err)
		}
		_, b := n.do("GET", "/"+target.Index+"/_settings/index.number_of_replicas", "")
		if !strings.Contains(string(b), `"number_of_replicas":"`+tc.want+`"`) {
			t.Errorf("replicas %+v: index settings %s, want %s replicas", tc.replicas, b, tc.want)
		}
	}
}

// TestDataStreamWithAlias runs the data-stream option on the OpenSearch
// node: the data stream, the alias OpenReplay searches (on every backing
// index, rollovers included), and shipping into it.
func TestDataStreamWithAlias(t *testing.T) {
	n := realNode(t)
	var r [4]byte
	rand.Read(r[:])
	target := Target{Index: testIndex(t, n), DataStream: true, Namespace: "t" + hex.EncodeToString(r[:])}
	t.Cleanup(func() {
		n.do("DELETE", "/_data_stream/"+target.DataStreamName(), "")
		n.do("DELETE", "/_index_template/"+target.TemplateName(), "")
	})
	c, err := esclient.New(esclient.Options{URLs: []string{n.url}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		if changed, err := InstallTemplate(ctx, c, target); err != nil || changed != want {
			t.Fatalf("InstallTemplate #%d: changed %v err %v", i+1, changed, err)
		}
		if changed, err := EnsureWriteTarget(ctx, c, target); err != nil || changed != want {
			t.Fatalf("EnsureWriteTarget #%d: changed %v err %v", i+1, changed, err)
		}
	}

	opts := fastOptions(t, n.url)
	opts.Index, opts.DataStream, opts.Namespace, opts.InstallTemplate = target.Index, true, target.Namespace, true
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, p, 0, 100)
	waitFor(t, "100 shipped", func() bool { return p.Stats().Shipped == 100 })
	if st, b := n.do("POST", "/"+target.DataStreamName()+"/_rollover", ""); st != 200 {
		t.Fatalf("rollover: %d %s", st, b)
	}
	publishN(t, p, 100, 100)
	closeWithin(t, p, 30*time.Second)
	if got := n.count(target.Index); got != 200 {
		t.Fatalf("the alias %s finds %d documents, want 200 (both backing indices)", target.Index, got)
	}
}

func TestDataStreamAliasNeedsTheName(t *testing.T) {
	n := realNode(t)
	var r [4]byte
	rand.Read(r[:])
	target := Target{Index: testIndex(t, n), DataStream: true, Namespace: "t" + hex.EncodeToString(r[:])}
	t.Cleanup(func() {
		n.do("DELETE", "/_data_stream/"+target.DataStreamName(), "")
		n.do("DELETE", "/_index_template/"+target.TemplateName(), "")
	})
	n.do("PUT", "/"+target.Index, "") // an index already has the alias's name
	c, _ := esclient.New(esclient.Options{URLs: []string{n.url}})
	_, err := InstallTemplate(context.Background(), c, target)
	if err == nil || !strings.Contains(err.Error(), "--data-stream") {
		t.Fatalf("InstallTemplate with an index in the alias's way: %v", err)
	}
	_, err = EnsureWriteTarget(context.Background(), c, target)
	if err == nil || !strings.Contains(err.Error(), "--data-stream") {
		t.Fatalf("EnsureWriteTarget with an index in the alias's way: %v", err)
	}
}

// elasticsearchDataStreamNode stands in for Elasticsearch 8, whose
// data-stream aliases OpenSearch (the test node) does not have. It records
// the requests, and answers as Elasticsearch does on a fresh cluster.
type elasticsearchDataStreamNode struct {
	mu       sync.Mutex
	requests []string
	template map[string]any
	aliases  string
}

func (e *elasticsearchDataStreamNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = append(e.requests, r.Method+" "+r.URL.Path)
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/":
		io.WriteString(w, `{"version":{"number":"8.15.0","build_flavor":"default"}}`)
	case r.URL.Path == "/_cluster/health":
		io.WriteString(w, `{"number_of_data_nodes":3}`)
	case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_index_template/"):
		json.Unmarshal(body, &e.template)
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == "POST" && r.URL.Path == "/_aliases":
		e.aliases = string(body)
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_data_stream/"):
		io.WriteString(w, `{"acknowledged":true}`)
	default: // nothing exists yet
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"type":"resource_not_found_exception","reason":"not found"},"status":404}`)
	}
}

func TestDataStreamOnElasticsearch(t *testing.T) {
	es := &elasticsearchDataStreamNode{}
	srv := httptest.NewServer(es)
	defer srv.Close()
	c, _ := esclient.New(esclient.Options{URLs: []string{srv.URL}})
	target := Target{Index: "logs", DataStream: true}
	if _, err := InstallTemplate(context.Background(), c, target); err != nil {
		t.Fatal(err)
	}
	if changed, err := EnsureWriteTarget(context.Background(), c, target); err != nil || !changed {
		t.Fatalf("EnsureWriteTarget: %v %v", changed, err)
	}
	tmpl := es.template["template"].(map[string]any)
	if _, ok := tmpl["aliases"]; ok {
		t.Error("Elasticsearch refuses aliases in a data stream template")
	}
	if p := es.template["index_patterns"].([]any); len(p) != 1 || p[0] != "logs-replaylink-default" {
		t.Errorf("index_patterns %v", p)
	}
	if got := tmpl["settings"].(map[string]any)["index.number_of_replicas"]; got != 1.0 {
		t.Errorf("replicas %v on a cluster of three data nodes, want 1", got)
	}
	if pr := es.template["priority"].(float64); pr <= 100 {
		t.Errorf("priority %v does not beat the built-in logs-*-* template (100)", pr)
	}
	want := `{"actions":[{"add":{"alias":"logs","index":"logs-replaylink-default","is_write_index":true}}]}`
	if es.aliases != want {
		t.Errorf("alias request %s, want %s", es.aliases, want)
	}
	if !strings.Contains(strings.Join(es.requests, ","), "PUT /_data_stream/logs-replaylink-default") {
		t.Errorf("the data stream was not created: %v", es.requests)
	}
}

func TestTargetValidation(t *testing.T) {
	for _, tc := range []struct {
		t  Target
		ok bool
	}{
		{Target{Index: "logs"}, true},
		{Target{Index: "logs", DataStream: true}, true},
		{Target{Index: "my-logs.2024"}, true},
		{Target{Index: "Logs"}, false},
		{Target{Index: ""}, false},
		{Target{Index: "_logs"}, false},
		{Target{Index: "a b"}, false},
		{Target{Index: "logs*"}, false},
		{Target{Index: "logs-replaylink-default", DataStream: true}, false},
		{Target{Index: "logs", DataStream: true, Namespace: "Prod"}, false},
		{Target{Index: "logs", DataStream: true, Namespace: "a-b"}, false},
	} {
		if err := tc.t.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.t, err)
		}
	}
}
