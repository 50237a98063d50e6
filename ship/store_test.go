package ship

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestScanFields(t *testing.T) {
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
		scanFields([]byte(tc.doc), storedFields, func(i int, v []byte) {
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

// FuzzScanFields checks the scanner never panics or loops, and agrees with
// encoding/json on valid documents that hold the nested field once, in one
// spelling, without duplicate keys or escapes, and not too deep.
func FuzzScanFields(f *testing.F) {
	f.Add(`{"openReplaySession":{"id":"42"},"http":{"request":{"id":"r"}}}`)
	f.Add(`{"openReplaySession":{"id":42},"x":[{"y":"z"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var got string
		scanFields([]byte(doc), storedFields[:1], func(_ int, v []byte) { got = string(v) })
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

func storeDoc(session, request string, n int) (id, src []byte) {
	return fmt.Appendf(nil, "id-%d", n), fmt.Appendf(nil, `{"message":"m%d","openReplaySession":{"id":%q},"http":{"request":{"id":%q}}}`, n, session, request)
}

func ids(docs []Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.ID)
	}
	return out
}

func TestMemoryStore(t *testing.T) {
	m := NewMemoryStore(4, 1<<20)
	for i, s := range []string{"1", "2", "1", "1", "2", "1"} {
		m.Add(storeDoc(s, fmt.Sprint("r", i), i))
	}
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-2", "id-3", "id-5"}) {
		t.Fatalf("Session(1) = %v (ids 0 and 1 are evicted, 4 is session 2)", got)
	}
	if got := ids(m.Request("r4")); !reflect.DeepEqual(got, []string{"id-4"}) {
		t.Fatalf("Request(r4) = %v", got)
	}
	if got := m.Request("r0"); len(got) != 0 {
		t.Fatalf("evicted document still found: %v", ids(got))
	}
	m.Add(storeDoc("1", "r9", 5)) // same id: kept once
	if m.Len() != 4 || len(m.Session("1")) != 3 {
		t.Fatalf("duplicate id stored: len %d", m.Len())
	}
	if len(m.bySession) != 2 || len(m.byID) != 4 {
		t.Fatalf("indexes leak: %d sessions, %d ids", len(m.bySession), len(m.byID))
	}
	var nilStore *MemoryStore
	if nilStore.Session("1") != nil || nilStore.Len() != 0 {
		t.Fatal("nil store is not empty")
	}
}

func TestMemoryStoreByteCap(t *testing.T) {
	_, one := storeDoc("1", "r", 0)
	m := NewMemoryStore(100, int64(3*len(one)))
	for i := range 10 {
		m.Add(storeDoc("1", "r", i))
	}
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-7", "id-8", "id-9"}) {
		t.Fatalf("Session(1) = %v, want the 3 newest", got)
	}
	m.Add([]byte("huge"), make([]byte, 4*len(one)))
	if m.Len() != 3 {
		t.Fatal("a document larger than the cap was kept")
	}
}

func BenchmarkMemoryStoreAdd(b *testing.B) {
	m := NewMemoryStore(50000, 64<<20)
	_, src := storeDoc("123456789", "0af7651916cd43dd8448eb211c80319c", 0)
	ids := make([][]byte, 1<<16)
	for i := range ids {
		ids[i] = fmt.Appendf(nil, "%032x", i)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Add(ids[i&(len(ids)-1)], src)
		i++
	}
}

func TestMemoryStoreReplace(t *testing.T) {
	m := NewMemoryStore(10, 1<<20)
	for i := range 3 {
		m.Add(storeDoc("1", fmt.Sprint("r", i), i))
	}
	// In place: the replacement keeps the original's place in the order.
	m.Replace([]byte("id-1"), []byte(`{"openReplaySession":{"id":"1"},"http":{"request":{"id":"r1"}},"v":2}`))
	docs := m.Session("1")
	if got := ids(docs); !reflect.DeepEqual(got, []string{"id-0", "id-1", "id-2"}) || !strings.Contains(string(docs[1].Source), `"v":2`) {
		t.Fatalf("after Replace: %v, id-1 = %s", got, docs[1].Source)
	}
	// An Add of the same id after the replacement changes nothing.
	m.Add(storeDoc("1", "r1", 1))
	if d := m.Request("r1"); len(d) != 1 || !strings.Contains(string(d[0].Source), `"v":2`) {
		t.Fatalf("Add after Replace: %v", d)
	}
	// A replacement naming another session and request moves between them.
	m.Replace([]byte("id-0"), []byte(`{"openReplaySession":{"id":"2"},"http":{"request":{"id":"rx"}}}`))
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-1", "id-2"}) {
		t.Fatalf("Session(1) = %v", got)
	}
	if got := ids(m.Session("2")); !reflect.DeepEqual(got, []string{"id-0"}) || len(m.Request("r0")) != 0 || len(m.Request("rx")) != 1 {
		t.Fatalf("Session(2) = %v, r0 %v, rx %v", got, m.Request("r0"), m.Request("rx"))
	}
	// Replacing an id never seen adds it; eviction keeps the indexes right.
	m.Replace(storeDoc("2", "r9", 9))
	if m.Len() != 4 || len(m.byID) != 4 {
		t.Fatalf("len %d, ids %d", m.Len(), len(m.byID))
	}
	for i := 10; i < 20; i++ {
		m.Add(storeDoc("3", fmt.Sprint("r", i), i))
	}
	if len(m.bySession) != 1 || len(m.byRequest) != 10 || m.Len() != 10 {
		t.Fatalf("indexes leak after eviction: %d sessions, %d requests, %d docs", len(m.bySession), len(m.byRequest), m.Len())
	}
}

func TestMemoryStoreReplaceOverTheByteCap(t *testing.T) {
	_, one := storeDoc("1", "r", 0)
	m := NewMemoryStore(100, int64(3*len(one)))
	for i := range 3 {
		m.Add(storeDoc("1", "r", i))
	}
	big := append(bytes.Repeat([]byte(" "), 2*len(one)), one...) // the whole cap
	m.Replace([]byte("id-2"), big)
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-2"}) || m.bytes != int64(len(big)) {
		t.Fatalf("Session(1) = %v, %d bytes: the oldest should go to make room", got, m.bytes)
	}
}
