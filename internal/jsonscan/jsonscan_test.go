package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// paths are the memory store's keys, the paths Fields is used for.
var paths = []string{"openReplaySession.id", "http.request.id"}

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		doc, session, request string
	}{
		{`{"openReplaySession":{"id":"42","source":"header"},"http":{"request":{"id":"r-1"}}}`, "42", "r-1"},
		{`{"openReplaySession.id":"42","http.request.id":"r-1"}`, "42", "r-1"},
		{`{"http":{"request.id":"r-1"},"openReplaySession":{"id":42}}`, "42", "r-1"},
		{` { "message" : "x { \"openReplaySession.id\": 7 }", "tags":["a",{"b":[1,2]}], "openReplaySession" : { "id" : "7" } } `, "7", ""},
		{`{"openReplaySession":{"id":"4\u0032"}}`, "42", ""},
		{`{"a":{"openReplaySession":{"id":"1"}}}`, "", ""},                   // not at the top
		{`{"openReplaySession":{"id":{"x":"1"}}}`, "", ""},                   // not a scalar
		{`{"openReplaySession":{"id":null},"http.request.id":true}`, "", ""}, // neither
		{`{"openReplaySession":{"id":"9"`, "9", ""},                          // truncated after
		{`["openReplaySession.id","1"]`, "", ""},
		{``, "", ""},
	} {
		var session, request string
		Fields([]byte(tc.doc), paths, func(i int, v []byte) {
			if i == 0 {
				session = string(v)
			} else {
				request = string(v)
			}
		})
		if session != tc.session || request != tc.request {
			t.Errorf("%s: session %q request %q, want %q %q", tc.doc, session, request, tc.session, tc.request)
		}
	}
}

// FuzzFields checks the scanner never panics or loops, and agrees with
// encoding/json on valid documents that hold the nested field once, in one
// spelling, without duplicate keys or escapes, and not too deep.
func FuzzFields(f *testing.F) {
	f.Add(`{"openReplaySession":{"id":"42"},"http":{"request":{"id":"r"}}}`)
	f.Add(`{"openReplaySession":{"id":42},"x":[{"y":"z"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var got string
		Fields([]byte(doc), paths[:1], func(_ int, v []byte) { got = string(v) })
		lower := strings.ToLower(doc)
		if strings.Count(lower, "openreplaysession") != 1 || !strings.Contains(doc, `"openReplaySession"`) ||
			strings.Count(lower, `"id"`) != strings.Count(doc, `"id"`) || strings.Count(doc, `"id"`) > 1 || strings.Contains(doc, `\`) ||
			strings.Count(doc, "{")+strings.Count(doc, "[") > 30 {
			return
		}
		var ref struct {
			S struct {
				ID json.RawMessage `json:"id"`
			} `json:"openReplaySession"`
		}
		if json.Unmarshal([]byte(doc), &ref) != nil || len(ref.S.ID) == 0 {
			return
		}
		var want string
		if json.Unmarshal(ref.S.ID, &want) != nil {
			var n json.Number
			if json.Unmarshal(ref.S.ID, &n) != nil {
				return // not a scalar the store indexes
			}
			want = n.String()
		}
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
