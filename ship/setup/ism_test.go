package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// ismNode is a request-checking stand-in for OpenSearch with its Index State
// Management plugin, which the test node cannot run: the plugin is not
// published on Maven Central, where the runner's modules come from. It
// answers only the requests ismRetention is meant to make, in the plugin's
// shapes (OpenSearch 2.19), and fails the test on anything else.
type ismNode struct {
	t  *testing.T
	mu sync.Mutex

	requests []string
	policy   json.RawMessage // as written; nil: none
	seqNo    int
	managed  map[string]string // backing index -> policy id ("" none)
}

func newISMNode(t *testing.T) (*ismNode, *httptest.Server) {
	s := &ismNode{t: t, managed: map[string]string{".ds-" + DataStreamName + "-000001": "", ".ds-" + DataStreamName + "-000002": ""}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *ismNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	w.Header().Set("Content-Type", "application/json")
	answer := func(status int, v string) { w.WriteHeader(status); io.WriteString(w, v) }
	const policyPath = "/_plugins/_ism/policies/" + ISMPolicyName
	pattern := "/.ds-" + DataStreamName + "-*"
	switch {
	case r.URL.Path == "/":
		answer(200, `{"name":"n","version":{"distribution":"opensearch","number":"2.19.1"}}`)
	case r.Method == "GET" && r.URL.Path == policyPath:
		if s.policy == nil {
			answer(404, `{"error":{"root_cause":[{"type":"status_exception","reason":"Policy not found"}],"type":"status_exception","reason":"Policy not found"},"status":404}`)
			return
		}
		// As the plugin stores it: ids, versions and defaults added.
		var p map[string]any
		json.Unmarshal(s.policy, &p)
		p["policy_id"], p["schema_version"], p["last_updated_time"] = ISMPolicyName, 21, 1733480000000
		for _, st := range p["states"].([]any) {
			for _, a := range st.(map[string]any)["actions"].([]any) {
				a.(map[string]any)["retry"] = map[string]any{"count": 3, "backoff": "exponential", "delay": "1m"}
			}
		}
		b, _ := json.Marshal(map[string]any{"_id": ISMPolicyName, "_version": s.seqNo + 1, "_seq_no": s.seqNo, "_primary_term": 1, "policy": p})
		answer(200, string(b))
	case r.Method == "PUT" && r.URL.Path == policyPath:
		var doc struct{ Policy json.RawMessage }
		if json.Unmarshal(body, &doc) != nil || doc.Policy == nil {
			s.t.Errorf("policy write without a policy: %s", body)
		}
		if s.policy != nil && r.URL.Query().Get("if_seq_no") != fmt.Sprint(s.seqNo) {
			answer(409, `{"error":{"type":"version_conflict_engine_exception","reason":"conflict"},"status":409}`)
			return
		}
		if s.policy != nil {
			s.seqNo++
		}
		s.policy = doc.Policy
		answer(201, `{"_id":"`+ISMPolicyName+`","policy":{}}`)
	case r.Method == "GET" && r.URL.Path == "/_plugins/_ism/explain"+pattern:
		out := map[string]any{}
		n := 0
		for index, id := range s.managed {
			if id == "" {
				out[index] = map[string]any{"index.plugins.index_state_management.policy_id": nil, "enabled": nil}
				continue
			}
			n++
			out[index] = map[string]any{"index.plugins.index_state_management.policy_id": id, "index.opendistro.index_state_management.policy_id": id, "enabled": true}
		}
		out["total_managed_indices"] = n
		b, _ := json.Marshal(out)
		answer(200, string(b))
	case r.Method == "POST" && r.URL.Path == "/_plugins/_ism/add"+pattern:
		var req struct {
			PolicyID string `json:"policy_id"`
		}
		json.Unmarshal(body, &req)
		updated := 0
		var failed []string
		for index, id := range s.managed {
			if id != "" {
				failed = append(failed, fmt.Sprintf(`{"index_name":%q,"index_uuid":"u","reason":"This index already has a policy, use the update policy API to update index policies"}`, index))
				continue
			}
			s.managed[index] = req.PolicyID
			updated++
		}
		answer(200, fmt.Sprintf(`{"updated_indices":%d,"failures":%v,"failed_indices":[%s]}`, updated, len(failed) > 0, strings.Join(failed, ",")))
	default:
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL.RequestURI())
		answer(400, `{"error":"no handler found"}`)
	}
}

func (s *ismNode) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countPrefixed(s.requests, prefix)
}

func TestRetentionISMOnOpenSearch(t *testing.T) {
	s, srv := newISMNode(t)
	o := configured(Options{DataStream: true, Retention: 14 * 24 * time.Hour})
	o.Client.URLs = []string{srv.URL}
	mustPrepare(t, &o)
	c := connect(context.Background(), &o)
	if c.exit != ExitOK {
		t.Fatalf("connect: %+v", c.version)
	}
	n := c.node
	st := retention(context.Background(), n, &o)
	if st.outcome != Changed || !strings.Contains(st.note, "delete 14d after the rollover") {
		t.Fatalf("first run: %+v", st)
	}
	var pol map[string]any
	json.Unmarshal(s.policy, &pol)
	states, _ := json.Marshal(pol["states"])
	want := `[{"actions":[{"rollover":{"min_index_age":"1d","min_primary_shard_size":"50gb"}}],"name":"hot","transitions":[{"conditions":{"min_rollover_age":"14d"},"state_name":"delete"}]},` +
		`{"actions":[{"delete":{}}],"name":"delete","transitions":[]}]`
	if string(states) != want {
		t.Errorf("states %s\nwant %s", states, want)
	}
	if tmpl, _ := json.Marshal(pol["ism_template"]); !bytes.Contains(tmpl, []byte(`"index_patterns":[".ds-logs-replaylink-default-*"]`)) {
		t.Errorf("ism_template %s: later backing indices would not get the policy", tmpl)
	}
	for index, id := range s.managed {
		if id != ISMPolicyName {
			t.Errorf("backing index %s is managed by %q", index, id)
		}
	}
	// Idempotent: a second run reads and writes nothing.
	writes := s.count("PUT ") + s.count("POST ")
	if st := retention(context.Background(), n, &o); st.outcome != Unchanged {
		t.Fatalf("second run: %+v (requests %q)", st, s.requests)
	}
	if s.count("PUT ")+s.count("POST ") != writes {
		t.Errorf("the second run wrote: %q", s.requests)
	}
	// Another retention replaces the policy, conditionally.
	o.Retention = 30 * 24 * time.Hour
	if st := retention(context.Background(), n, &o); st.outcome != Changed {
		t.Fatalf("new retention: %+v", st)
	}
	if !strings.Contains(string(s.policy), `"min_rollover_age":"30d"`) || s.count("PUT /_plugins/_ism/policies/"+ISMPolicyName+"?if_seq_no=0&if_primary_term=1") != 1 {
		t.Errorf("policy %s; requests %q", s.policy, s.requests)
	}
	// A backing index under another policy is reported, not taken over.
	s.managed[".ds-"+DataStreamName+"-000003"] = "someone-elses"
	if st := retention(context.Background(), n, &o); st.outcome != Failed || !strings.Contains(st.note, "someone-elses") || !strings.Contains(st.fix, "_ism/remove") {
		t.Fatalf("foreign policy: %+v", st)
	}
}

// TestRetentionISMOnTheTestNode: the real node has no ISM plugin; setup
// says so, with the fix.
func TestRetentionISMOnTheTestNode(t *testing.T) {
	esURL := estest.URL(t)
	o := configured(Options{DataStream: true})
	o.Client.URLs = []string{esURL}
	mustPrepare(t, &o)
	c := connect(context.Background(), &o)
	if c.exit != ExitOK {
		t.Fatalf("connect: %+v", c.reachable)
	}
	st := retention(context.Background(), c.node, &o)
	if st.outcome != Failed || !strings.Contains(st.fix, "no Index State Management plugin") {
		t.Fatalf("%+v", st)
	}
}
