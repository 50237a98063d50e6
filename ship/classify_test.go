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
	// As ?pretty (or a proxy re-indenting) would send it, keys reordered.
	prettyCreated = "{\n  \"items\" : [\n    {\n      \"create\" : {\n        \"status\" : 201\n      }\n    },\r\n\t{ \"index\" : { \"status\" : 200 } }\n  ],\n  \"errors\" : false\n}\n"
	// A reason quoting a healthy answer, before and after the real "errors".
	quotedErrors = `{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"document_parsing_exception",` +
		`"reason":"field [note] of value [\"errors\":false,\"items\":[{\"create\":{\"status\":201}}]}] is not a date"}}}]}`
	quotedErrorsLast = `{"items":[{"create":{"status":400,"error":{"type":"x","reason":"}]},\"errors\":false}"}}},{"create":{"status":201}}],"errors":true}`
	// "errors":false that no item agrees with: believe the items.
	lyingErrors = `{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}`
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
		{name: "items too many", status: 200, body: allCreated, n: 2, want: []Verdict{Retry, Retry}, wantErr: "3 items for 2 documents"},
		{name: "no errors, no items", status: 200, body: `{"errors":false,"items":[]}`, n: 0, want: []Verdict{}},
		{name: "pretty-printed", status: 200, body: prettyCreated, n: 2, want: []Verdict{Indexed, Indexed}, wantStat: []int{201, 200}},
		{name: `"errors" quoted in a reason`, status: 200, body: quotedErrors, n: 2, want: []Verdict{Indexed, Reject}, wantStat: []int{201, 400}},
		{name: `"errors" quoted, items first`, status: 200, body: quotedErrorsLast, n: 2, want: []Verdict{Reject, Indexed}, wantStat: []int{400, 201}},
		{name: "errors:false contradicted by an item", status: 200, body: lyingErrors, n: 2, want: []Verdict{Indexed, Reject}, wantStat: []int{201, 400}},
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
	for _, body := range []string{allCreated, mixed} { // the scan, then the decode
		got := ClassifyBulk(200, []byte(body), 3, dst)
		if &got[0] != &dst[:1][0] {
			t.Fatalf("dst was not reused for %.30s", body)
		}
	}
}

// scanIndexed takes the healthy answers off encoding/json, and leaves every
// answer it is not sure of to decodeItems.
func TestScanIndexed(t *testing.T) {
	items := func(n int, item string) string {
		return `{"errors":false,"items":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]}"
	}
	created := `{"create":{"status":201}}`
	for _, tc := range []struct {
		name string
		body string
		n    int
		want bool
	}{
		{"all created", allCreated, 3, true},
		{"1000 created", items(1000, created), 1000, true},
		{"pretty-printed, keys reordered", prettyCreated, 2, true},
		{"none", `{"errors":false,"items":[]}`, 0, true},
		{"one item short", allCreated, 4, false},
		{"one item over", allCreated, 2, false},
		{"errors true", mixed, 8, false},
		{"errors true, items all created", `{"errors":true,"items":[{"create":{"status":201}}]}`, 1, false},
		{`"errors" quoted in a reason`, quotedErrors, 2, false},
		{`"errors" quoted, items first`, quotedErrorsLast, 2, false},
		{"errors:false contradicted by an item", lyingErrors, 2, false},
		{"no errors key", `{"items":[{"create":{"status":201}}]}`, 1, false},
		{"errors twice", `{"errors":false,"errors":true,"items":[{"create":{"status":201}}]}`, 1, false},
		{"items twice", `{"errors":false,"items":[{"create":{"status":201}}],"items":[]}`, 1, false},
		{"escaped key", `{"err\u006frs":false,"errors":false,"items":[{"create":{"status":201}}]}`, 1, false},
		{"other key", `{"took":3,"errors":false,"items":[{"create":{"status":201}}]}`, 1, false},
		{"other action", `{"errors":false,"items":[{"update":{"status":200}}]}`, 1, false},
		{"two actions in an item", `{"errors":false,"items":[{"create":{"status":201},"index":{"status":500}}]}`, 1, false},
		{"item with more than its status", `{"errors":false,"items":[{"create":{"status":201,"_id":"a"}}]}`, 1, false},
		{"nested object for a count", `{"errors":false,"items":[{"create":{"status":{"a":[1,2]}}}]}`, 1, false},
		{"status 409 without an error", `{"errors":false,"items":[{"create":{"status":409}}]}`, 1, false},
		{"status 2010", `{"errors":false,"items":[{"create":{"status":2010}}]}`, 1, false},
		{"status 201.5", `{"errors":false,"items":[{"create":{"status":201.5}}]}`, 1, false},
		{"status as a string", `{"errors":false,"items":[{"create":{"status":"201"}}]}`, 1, false},
		{"truncated", `{"errors":false,"items":[{"create":{"status":201}}`, 1, false},
		{"trailing data", allCreated + `{}`, 3, false},
		{"trailing comma", `{"errors":false,"items":[{"create":{"status":201}},]}`, 1, false},
		{"errors falsey", `{"errors":falsey,"items":[{"create":{"status":201}}]}`, 1, false},
		{"empty", ``, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scanIndexed([]byte(tc.body), tc.n, nil)
			if ok != tc.want {
				t.Fatalf("scanIndexed = %v, want %v", ok, tc.want)
			}
			if ok {
				sameResults(t, got, decodeItems(200, []byte(tc.body), tc.n, nil))
			}
		})
	}
}

// sameResults fails unless the scan got what the full decode gets.
func sameResults(t *testing.T, scanned, decoded []ItemResult) {
	t.Helper()
	if len(scanned) != len(decoded) {
		t.Fatalf("scan: %d results, decode: %d", len(scanned), len(decoded))
	}
	for i := range scanned {
		s, d := scanned[i], decoded[i]
		if s.Verdict != d.Verdict || s.Status != d.Status || len(s.Error) != len(d.Error) {
			t.Fatalf("item %d: scan %v %d %s, decode %v %d %s", i, s.Verdict, s.Status, s.Error, d.Verdict, d.Status, d.Error)
		}
	}
}

func FuzzClassifyBulk(f *testing.F) {
	for _, s := range []string{allCreated, mixed, replaced, openSearchMapping, rejectedRequest, malformedBulk, "",
		prettyCreated, quotedErrors, quotedErrorsLast, lyingErrors} {
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
		if scanned, ok := scanIndexed([]byte(body), n, nil); ok {
			sameResults(t, scanned, decodeItems(200, []byte(body), n, nil))
		}
	})
}
