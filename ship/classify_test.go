package ship

import (
	"strings"
	"testing"
)

// Canned answers, shaped like Elasticsearch 8 and OpenSearch 2 answer a
// _bulk with filter_path=errors,items.*.status,items.*.error.
const (
	allCreated = `{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}},{"create":{"status":201}}]}`
	mixed      = `{"errors":true,"items":[` +
		`{"create":{"status":201}},` +
		`{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, document already exists (current version [1])"}}},` +
		`{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"[1:12] failed to parse field [message] of type [text]"}}},` +
		`{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},` +
		`{"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},` +
		`{"create":{"status":404,"error":{"type":"index_not_found_exception","reason":"no such index [logs]"}}},` +
		`{"create":{"status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for API key"}}},` +
		`{"create":{"status":200}}]}`
	// Replacements go with the index action: 200 overwrote, 201 created;
	// their originals' creates meet them as 409s.
	replaced = `{"errors":true,"items":[` +
		`{"index":{"status":200}},` +
		`{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, document already exists (current version [2])"}}},` +
		`{"index":{"status":201}},` +
		`{"index":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},` +
		`{"index":{"status":400,"error":{"type":"illegal_argument_exception","reason":"only write ops with an op_type of create are allowed in data streams"}}}]}`
	openSearchMapping = `{"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [http.response.status_code] of type [integer]","caused_by":{"type":"number_format_exception","reason":"For input string: \"abc\""}}}}]}`
	rejectedRequest   = `{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected"}],"type":"es_rejected_execution_exception","reason":"rejected"},"status":429}`
	securityError     = `{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials and anonymous access is not allowed for this request"},"status":401}`
	malformedBulk     = `{"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line [1], expected START_OBJECT but found [VALUE_STRING]"},"status":400}`
)

func TestClassifyBulk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		n        int
		want     []Verdict
		wantErr  string // substring of the first result's error
		wantStat []int
	}{
		{name: "all created", status: 200, body: allCreated, n: 3, want: []Verdict{Indexed, Indexed, Indexed}},
		{
			name: "mixed items", status: 200, body: mixed, n: 8,
			want:     []Verdict{Indexed, Duplicate, Reject, Backoff, Retry, Backoff, Backoff, Indexed},
			wantStat: []int{201, 409, 400, 429, 503, 404, 403, 200},
		},
		{
			name: "replacements (index action)", status: 200, body: replaced, n: 5,
			want:     []Verdict{Indexed, Duplicate, Indexed, Retry, Reject},
			wantStat: []int{200, 409, 201, 503, 400},
		},
		{name: "opensearch mapping error", status: 200, body: openSearchMapping, n: 1, want: []Verdict{Reject}, wantErr: "mapper_parsing_exception"},
		{name: "request rejected 429", status: 429, body: rejectedRequest, n: 2, want: []Verdict{Backoff, Backoff}, wantErr: "es_rejected_execution_exception"},
		{name: "node failing 503 from a proxy", status: 503, body: `<html>Service Unavailable</html>`, n: 1, want: []Verdict{Backoff}, wantErr: "Service Unavailable"},
		{name: "gateway timeout", status: 504, body: ``, n: 2, want: []Verdict{Backoff, Backoff}},
		{name: "credentials refused", status: 401, body: securityError, n: 2, want: []Verdict{Backoff, Backoff}, wantErr: "security_exception"},
		{name: "forbidden", status: 403, body: `{"error":{"type":"security_exception","reason":"action [indices:data/write/bulk] is unauthorized"},"status":403}`, n: 1, want: []Verdict{Backoff}},
		{name: "too large", status: 413, body: ``, n: 4, want: []Verdict{Split, Split, Split, Split}},
		{name: "too large, single document", status: 413, body: ``, n: 1, want: []Verdict{Split}},
		{name: "malformed request, several", status: 400, body: malformedBulk, n: 2, want: []Verdict{Split, Split}},
		{name: "malformed request, one", status: 400, body: malformedBulk, n: 1, want: []Verdict{Reject}, wantErr: "Malformed action"},
		{name: "items missing", status: 200, body: `{"errors":false,"items":[{"create":{"status":201}}]}`, n: 2, want: []Verdict{Retry, Retry}, wantErr: "1 items for 2 documents"},
		{name: "unreadable body", status: 200, body: `{"errors":fal`, n: 1, want: []Verdict{Retry}, wantErr: "unreadable bulk response"},
		{name: "redirect", status: 302, body: ``, n: 1, want: []Verdict{Backoff}, wantErr: "answered 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClassifyBulk(tc.status, []byte(tc.body), tc.n, nil)
			if len(got) != len(tc.want) {
				t.Fatalf("%d results, want %d", len(got), len(tc.want))
			}
			for i, r := range got {
				if r.Verdict != tc.want[i] {
					t.Errorf("item %d: %v, want %v", i, r.Verdict, tc.want[i])
				}
				if tc.wantStat != nil && r.Status != tc.wantStat[i] {
					t.Errorf("item %d: status %d, want %d", i, r.Status, tc.wantStat[i])
				}
				if (r.Verdict == Reject || r.Verdict == Retry) && len(r.Error) == 0 {
					t.Errorf("item %d: %v without an error to record", i, r.Verdict)
				}
			}
			if tc.wantErr != "" && !strings.Contains(string(got[0].Error), tc.wantErr) {
				t.Errorf("error %s, want it to mention %q", got[0].Error, tc.wantErr)
			}
		})
	}
}

func TestClassifyBulkReusesDst(t *testing.T) {
	dst := make([]ItemResult, 0, 8)
	got := ClassifyBulk(200, []byte(allCreated), 3, dst)
	if &got[0] != &dst[:1][0] {
		t.Fatal("dst was not reused")
	}
}

func FuzzClassifyBulk(f *testing.F) {
	for _, s := range []string{allCreated, mixed, replaced, openSearchMapping, rejectedRequest, malformedBulk, ""} {
		f.Add(200, s, 3)
		f.Add(400, s, 1)
	}
	f.Fuzz(func(t *testing.T, status int, body string, n int) {
		if n < 0 || n > 1000 {
			return
		}
		got := ClassifyBulk(status, []byte(body), n, nil)
		if len(got) != n {
			t.Fatalf("%d results for %d documents", len(got), n)
		}
		for _, r := range got {
			if r.Verdict < Indexed || r.Verdict > Reject {
				t.Fatalf("invalid verdict %d", r.Verdict)
			}
		}
	})
}
