package lookup

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/memstore"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func get(t *testing.T, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeAnswer(t *testing.T, rec *httptest.ResponseRecorder) answer {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, rec.Body)
	}
	return a
}

func logField(t *testing.T, raw json.RawMessage, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("log is not an object: %s", raw)
	}
	return str(m, name)
}

func TestSessionLogsFromRecentOnly(t *testing.T) {
	docs := sampleSession("7391048572913", t0)
	// Documents reach the store in the order they are finished, not by time.
	rec := newStore(docs[5], docs[0], docs[3], docs[1], docs[4], docs[2], sampleSession("555", t0)[0])
	h := NewHandler(Options{MemoryStore: rec})

	a := decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs"))
	if a.Session != "7391048572913" || a.Count != 6 || len(a.Logs) != 6 || a.Truncated {
		t.Fatalf("answer: session %q count %d logs %d truncated %v", a.Session, a.Count, len(a.Logs), a.Truncated)
	}
	var prev string
	for i, l := range a.Logs {
		ts := logField(t, l, "utc_time")
		if ts < prev {
			t.Fatalf("log %d at %s comes after %s: not sorted by utc_time", i, ts, prev)
		}
		prev = ts
	}
	for i, want := range []string{"a1", "b1", "b2", "a2", "b3", "a3"} {
		if got := logField(t, a.Logs[i], "_id"); got != "7391048572913-"+want {
			t.Errorf("log %d: _id %q, want 7391048572913-%s", i, got, want)
		}
	}

	a = decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs?level=warning"))
	if a.Count != 4 {
		t.Fatalf("level=warning: %d logs, want 4 (2 warnings, 2 errors)", a.Count)
	}
	for _, l := range a.Logs {
		if lv := logField(t, l, "level"); lv != "warning" && lv != "error" {
			t.Fatalf("level=warning let through %q", lv)
		}
	}
	a = decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs?from=2025-03-14T09:26:53.100Z&to=2025-03-14T09:26:53.420Z"))
	if a.Count != 3 {
		t.Fatalf("from/to: %d logs, want 3", a.Count)
	}
	a = decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs?limit=2"))
	if a.Count != 2 || !a.Truncated || logField(t, a.Logs[1], "utc_time") != "2025-03-14T09:26:53.003Z" {
		t.Fatalf("limit=2: count %d truncated %v", a.Count, a.Truncated)
	}
	a = decodeAnswer(t, get(t, h, "/sessions/42/logs"))
	if a.Count != 0 || a.Logs == nil {
		t.Fatalf("unknown session: count %d logs %v; want 0 and an empty list", a.Count, a.Logs)
	}
}

func TestBadInputIs400(t *testing.T) {
	h := NewHandler(Options{MemoryStore: newStore()})
	for _, c := range []struct{ target, want string }{
		{"/sessions/abc/logs", "invalid session id \"abc\""},
		{"/sessions/12a/logs", "decimal digits"},
		{"/sessions/123456789012345678901/logs", "1 to 20 decimal digits"},
		{"/sessions/%3Cscript%3E", "invalid session id"},
		{"/sessions/1/logs?level=loud", "level=\"loud\": expected one of debug, info, warning, error"},
		{"/sessions/1/logs?from=yesterday", "from=\"yesterday\": expected an RFC 3339 time"},
		{"/sessions/1/logs?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "is before from="},
		{"/sessions/1/logs?limit=0", "limit=\"0\": expected a whole number from 1 to 10000"},
		{"/sessions/1/logs?limit=10001", "from 1 to 10000"},
		{"/requests/a%20b", "invalid request id"},
	} {
		rec := get(t, h, c.target)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %q, want 400 containing %q", c.target, rec.Code, rec.Body, c.want)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type %q; an echoed id must not be served as HTML", c.target, ct)
		}
	}
}

func TestMergeDedupesByID(t *testing.T) {
	s := sampleSession("9", t0)
	var shipped []logDoc
	for _, d := range s[:4] {
		doc, ok := parseDoc(d.id, d.src)
		if !ok {
			t.Fatal("fixture does not parse")
		}
		shipped = append(shipped, doc)
	}
	// Recent: docs 0 and 3 shipped already, 4 and 5 not yet, and a document
	// that is not JSON (skipped, not fatal).
	recent := []memstore.Document{{ID: s[0].id, Source: s[0].src}, {ID: s[5].id, Source: s[5].src},
		{ID: s[3].id, Source: s[3].src}, {ID: s[4].id, Source: s[4].src}, {ID: "bad", Source: []byte("{not json")}}
	docs, cut := merge(shipped, recent, query{Limit: queryLimit})
	if cut || len(docs) != 6 {
		t.Fatalf("merged %d docs (cut %v), want the 6 distinct ones", len(docs), cut)
	}
	for i, want := range []string{"9-a1", "9-b1", "9-b2", "9-a2", "9-b3", "9-a3"} {
		if docs[i].ID != want {
			t.Errorf("doc %d has _id %q, want %q", i, docs[i].ID, want)
		}
	}
	docs, cut = merge(shipped, recent, query{Limit: 5, MinLevel: "info"})
	if !cut || len(docs) != 5 {
		t.Errorf("limit 5: %d docs, cut %v", len(docs), cut)
	}
	// The _id is the first key of every answer document.
	if got := string(docs[0].withID()); !strings.HasPrefix(got, `{"_id":"9-a1","`) || !json.Valid([]byte(got)) {
		t.Errorf("withID: %s", got)
	}
	empty := logDoc{ID: "x", Source: json.RawMessage(`{ }`)}
	if got := string(empty.withID()); got != `{"_id":"x"}` {
		t.Errorf("withID of an empty object: %s", got)
	}
}

func TestRequestJSONOrHTML(t *testing.T) {
	rec := newStore(sampleSession("31337", t0)...)
	h := NewHandler(Options{MemoryStore: rec})

	for _, c := range []struct {
		target string
		hdr    []string
		json   bool
	}{
		{"/requests/req-2?format=json", nil, true},
		{"/requests/req-2", []string{"Accept", "application/json"}, true},
		{"/requests/req-2", []string{"Accept", "text/html,application/xhtml+xml,application/json;q=0.9"}, false},
		{"/requests/req-2?format=html", []string{"Accept", "application/json"}, false},
		{"/requests/req-2", nil, false},
		{"/sessions/31337?format=json", nil, true},
	} {
		res := get(t, h, c.target, c.hdr...)
		if res.Code != http.StatusOK {
			t.Fatalf("%s %v: %d %s", c.target, c.hdr, res.Code, res.Body)
		}
		isJSON := res.Header().Get("Content-Type") == "application/json"
		if isJSON != c.json {
			t.Errorf("%s %v: Content-Type %q, want JSON %v", c.target, c.hdr, res.Header().Get("Content-Type"), c.json)
		}
	}
	a := decodeAnswer(t, get(t, h, "/requests/req-2?format=json"))
	if a.Request != "req-2" || a.Count != 2 {
		t.Fatalf("request answer: %q with %d logs, want req-2 with its access record and its error line", a.Request, a.Count)
	}
	page := get(t, h, "/requests/req-2").Body.String()
	for _, want := range []string{"POST", "/api/checkout", "KeyError", `href="../sessions/31337"`} {
		if !strings.Contains(page, want) {
			t.Errorf("request page lacks %q", want)
		}
	}
}

func TestSessionPageEscapesAndShowsErrors(t *testing.T) {
	rec := newStore(sampleSession("7391048572913", t0)...)
	h := NewHandler(Options{MemoryStore: rec})
	res := get(t, h, "/sessions/7391048572913")
	if res.Code != http.StatusOK || !strings.HasPrefix(res.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", res.Code, res.Header().Get("Content-Type"))
	}
	if csp := res.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	body := res.Body.String()
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") {
		t.Fatal("a log line's markup reached the page unescaped")
	}
	if !strings.Contains(body, "documents from replaylink&#39;s memory</footer>") || strings.Contains(body, "Elasticsearch") {
		t.Error("without --es-url the footer must not name Elasticsearch as a source")
	}
	for _, want := range []string{
		"&lt;script&gt;document.title=", // the line shows as text
		"Traceback (most recent call last):",
		"KeyError",
		`href="../requests/req-2"`,
		"<b>3 requests</b>",
		"slow disk: 120 ms",
		"48.9 ms",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "[openReplaySession.id=") {
		t.Error("the page repeats the session marker on every line")
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "<link") || strings.Contains(body, "url(") {
		t.Error("the page refers to something outside itself")
	}
	// The backend lines of req-2 sit inside its section, after its row.
	sec := body[strings.Index(body, `href="../requests/req-2"`):]
	sec = sec[:strings.Index(sec, "</section>")]
	if !strings.Contains(sec, "Exception on /api/checkout") {
		t.Error("req-2's error line is not under its request")
	}
	empty := get(t, h, "/sessions/1").Body.String()
	if !strings.Contains(empty, "No logs found") {
		t.Error("an empty session's page does not say so")
	}
}

func TestUnreachableElasticsearchStillAnswersFromMemory(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	rec := newStore(sampleSession("77", t0)...)
	h := NewHandler(Options{MemoryStore: rec, ES: plainTransport{dead.URL}, Timeout: 2 * time.Second})
	a := decodeAnswer(t, get(t, h, "/sessions/77/logs"))
	if a.Count != 6 || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "Elasticsearch could not be searched") {
		t.Fatalf("count %d warnings %q", a.Count, a.Warnings)
	}
	page := get(t, h, "/sessions/77").Body.String()
	if !strings.Contains(page, "Elasticsearch could not be searched") {
		t.Error("the page hides that Elasticsearch was not searched")
	}
}

// plainTransport is the least Transport: it sends requests to one base URL.
// Tests that need the real client use esclient.New.
type plainTransport struct{ base string }

func (p plainTransport) Perform(req *http.Request) (*http.Response, error) {
	r2, err := http.NewRequestWithContext(req.Context(), req.Method, p.base+req.URL.RequestURI(), req.Body)
	if err != nil {
		return nil, err
	}
	r2.Header = req.Header
	return http.DefaultClient.Do(r2)
}

func TestElasticsearchErrorsAreNamed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			io.WriteString(w, `{"version":{"number":"8.15.0"}}`)
			return
		}
		if r.URL.Path == "/missing/_search" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"type":"index_not_found_exception","reason":"no such index [missing]"},"status":404}`)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"type":"security_exception","reason":"action [indices:data/read/search] is unauthorized"},"status":403}`)
	}))
	defer srv.Close()
	rec := newStore(sampleSession("5", t0)[0])

	a := decodeAnswer(t, get(t, NewHandler(Options{MemoryStore: rec, ES: plainTransport{srv.URL}, Index: "missing"}), "/sessions/5/logs"))
	if a.Count != 1 || len(a.Warnings) != 0 {
		t.Fatalf("a missing index means nothing shipped yet, not a failure: count %d warnings %q", a.Count, a.Warnings)
	}
	a = decodeAnswer(t, get(t, NewHandler(Options{MemoryStore: rec, ES: plainTransport{srv.URL}}), "/sessions/5/logs"))
	if len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "403: security_exception") {
		t.Fatalf("warnings %q: want the 403 and its reason", a.Warnings)
	}
}

// BenchmarkSessionLookup measures a lookup of a long session (1000
// documents, memory store only) as JSON and as the page.
func BenchmarkSessionLookup(b *testing.B) {
	m := memstore.New(2000, 64<<20)
	for i := 0; i < 1000/6+1; i++ {
		for _, s := range sampleSession("7391048572913", t0.Add(time.Duration(i)*time.Second)) {
			m.Add([]byte(fmt.Sprintf("%s-%d", s.id, i)), s.src)
		}
	}
	h := NewHandler(Options{MemoryStore: m})
	for _, target := range []string{"/sessions/7391048572913/logs", "/sessions/7391048572913"} {
		b.Run(strings.TrimPrefix(target, "/sessions/7391048572913"), func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest(http.MethodGet, target, nil)
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}

// With --memory-store 0 there is no recent store: a lookup says so, with
// the fix, instead of failing.
func TestLookupWithoutRecentDocuments(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *Handler
		want string
	}{
		{"no store, no Elasticsearch", NewHandler(Options{}), "start it with --memory-store 50000 (the default) or with --es-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest("GET", "/sessions/42/logs", nil))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), "--memory-store 0") || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("JSON: %d %s", rec.Code, rec.Body)
			}
			rec = httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest("GET", "/sessions/42", nil))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), "nowhere (--memory-store 0 and no --es-url)") || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("page: %d %s", rec.Code, rec.Body)
			}
		})
	}
}
