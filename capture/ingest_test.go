package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/capture/hooks"
)

type ingestResult struct {
	status int
	header http.Header
	ans    ingestAnswer
}

func newIngestServer(t *testing.T, h *IngestHandler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, method, contentType, encoding string, body io.Reader) ingestResult {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/ingest", body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans ingestAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return ingestResult{resp.StatusCode, resp.Header, ans}
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// noLength hides a body's length so the client sends it chunked.
type noLength struct{ io.Reader }

func TestIngestAcceptsLines(t *testing.T) {
	sink := newRecordSink()
	srv := newIngestServer(t, &IngestHandler{Sink: sink, MaxLineBytes: 16})
	body := "{\"msg\":\"a\"}\n\n{\"msg\":\"b\"}\r\nplain \xff text\n" + strings.Repeat("z", 40) + "\nlast"
	r := post(t, srv, http.MethodPost, "application/x-ndjson", "", strings.NewReader(body))
	if r.status != http.StatusAccepted || r.ans != (ingestAnswer{Accepted: 5, Truncated: 1}) {
		t.Fatalf("status %d answer %+v", r.status, r.ans)
	}
	equalStrings(t, "lines", sink.texts(Ingest), []string{`{"msg":"a"}`, `{"msg":"b"}`, "plain \xff text", strings.Repeat("z", 16), "last"})
	for _, l := range sink.all() {
		if l.Stream != Ingest || !strings.HasPrefix(l.Origin, "127.0.0.1:") || l.Truncated != (l.Text == strings.Repeat("z", 16)) {
			t.Errorf("line %+v: want stream ingest, origin the client address, truncated only the long one", l)
		}
	}
}

// TestIngestTakesHookMarksOff: an agent pushing a sidecar's log file pushes
// the runtime hooks' marks too; they are taken off into Line.Hook, and a
// mark with another nonce stays text.
func TestIngestTakesHookMarksOff(t *testing.T) {
	sink := newRecordSink()
	nonce := hooks.NewNonce()
	srv := newIngestServer(t, &IngestHandler{Sink: sink, HookNonce: nonce})
	m := hooks.Mark{Span: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	forged := string(hooks.AppendMark(nil, hooks.NewNonce(), m))
	body := string(hooks.AppendMark(nil, nonce, m)) + "ERROR marked\n" + forged + "INFO forged\n"
	if r := post(t, srv, http.MethodPost, "application/x-ndjson", "", strings.NewReader(body)); r.status != http.StatusAccepted {
		t.Fatalf("status %d", r.status)
	}
	got := sink.all()
	if len(got) != 2 || got[0].Text != "ERROR marked" || got[0].Hook != m || got[1].Text != forged+"INFO forged" || !got[1].Hook.IsZero() {
		t.Errorf("lines %+v", got)
	}
}

func TestIngestGzip(t *testing.T) {
	sink := newRecordSink()
	srv := newIngestServer(t, &IngestHandler{Sink: sink})
	r := post(t, srv, http.MethodPost, "application/x-ndjson; charset=utf-8", "gzip", bytes.NewReader(gzipped("one\ntwo\nthree\n")))
	if r.status != http.StatusAccepted || r.ans.Accepted != 3 {
		t.Fatalf("status %d answer %+v", r.status, r.ans)
	}
	equalStrings(t, "lines", sink.texts(Ingest), []string{"one", "two", "three"})
}

func TestIngestTooLarge(t *testing.T) {
	sink := newRecordSink()
	srv := newIngestServer(t, &IngestHandler{Sink: sink, MaxBodyBytes: 100})
	lines := strings.Repeat("0123456789abcdefghi\n", 10) // 200 bytes

	// Announced too large: refused unread.
	r := post(t, srv, http.MethodPost, "application/x-ndjson", "", strings.NewReader(lines))
	if r.status != http.StatusRequestEntityTooLarge || r.ans.Accepted != 0 || !strings.Contains(r.ans.Error, "smaller batches") {
		t.Fatalf("with Content-Length: status %d answer %+v", r.status, r.ans)
	}
	if n := len(sink.all()); n != 0 {
		t.Fatalf("%d lines kept from a refused body", n)
	}

	// Chunked: found out while reading; the lines before the limit are kept
	// and the answer says so.
	r = post(t, srv, http.MethodPost, "application/jsonl", "", noLength{strings.NewReader(lines)})
	if r.status != http.StatusRequestEntityTooLarge || r.ans.Accepted != 5 {
		t.Fatalf("chunked: status %d answer %+v", r.status, r.ans)
	}
	if n := len(sink.all()); n != r.ans.Accepted {
		t.Fatalf("%d lines kept, answer says %d", n, r.ans.Accepted)
	}

	// Small compressed, too large decompressed.
	r = post(t, srv, http.MethodPost, "application/json", "gzip", bytes.NewReader(gzipped(strings.Repeat("x", 1000))))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.ans.Error, "decompression") {
		t.Fatalf("gzip bomb: status %d answer %+v", r.status, r.ans)
	}
}

func TestIngestRefusals(t *testing.T) {
	sink := newRecordSink()
	srv := newIngestServer(t, &IngestHandler{Sink: sink})
	cases := []struct {
		name, method, contentType, encoding string
		body                                []byte
		status                              int
		errorHas                            string
	}{
		{"get", http.MethodGet, "", "", nil, http.StatusMethodNotAllowed, "POST"},
		// What a web page can send without a CORS preflight is refused,
		// with the fix: curl --data-binary sends the form type.
		{"form", http.MethodPost, "application/x-www-form-urlencoded", "", []byte("a=b"), http.StatusUnsupportedMediaType, "curl -H 'Content-Type: application/x-ndjson' --data-binary"},
		{"text", http.MethodPost, "text/plain;charset=UTF-8", "", []byte("[openReplaySession.id=1] x\n"), http.StatusUnsupportedMediaType, "Content-Type: application/x-ndjson"},
		{"multipart", http.MethodPost, "multipart/form-data; boundary=x", "", []byte("--x--\n"), http.StatusUnsupportedMediaType, "any web page"},
		{"none", http.MethodPost, "", "", []byte("x\n"), http.StatusUnsupportedMediaType, "no Content-Type"},
		{"malformed", http.MethodPost, "application/x-ndjson; =", "", []byte("x\n"), http.StatusUnsupportedMediaType, "application/x-ndjson"},
		{"brotli", http.MethodPost, "application/x-ndjson", "br", []byte("x\n"), http.StatusUnsupportedMediaType, "gzip"},
		{"not gzip", http.MethodPost, "application/x-ndjson", "gzip", []byte("plain text\n"), http.StatusBadRequest, "not valid gzip"},
		{"cut gzip", http.MethodPost, "application/x-ndjson", "gzip", gzipped("a\nb\nc\n")[:20], http.StatusBadRequest, "not valid gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(sink.all())
			r := post(t, srv, c.method, c.contentType, c.encoding, bytes.NewReader(c.body))
			if r.status != c.status || !strings.Contains(r.ans.Error, c.errorHas) {
				t.Fatalf("status %d answer %+v; want %d with %q", r.status, r.ans, c.status, c.errorHas)
			}
			if c.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow header %q", r.header.Get("Allow"))
			}
			// Lines decoded before the problem are kept and reported.
			if kept := len(sink.all()) - before; kept != r.ans.Accepted || (c.name != "cut gzip" && kept != 0) {
				t.Errorf("%d lines kept, answer says %d accepted", kept, r.ans.Accepted)
			}
		})
	}
}

func BenchmarkIngest(b *testing.B) {
	body := []byte(strings.Repeat(`{"level":"info","msg":"GET /api/cart 200","ts":"2024-05-01T12:00:00Z"}`+"\n", 1000))
	h := &IngestHandler{Sink: discardSink{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	rd := bytes.NewReader(body)
	for b.Loop() {
		rd.Reset(body)
		req := httptest.NewRequest(http.MethodPost, "/ingest", rd)
		req.Header.Set("Content-Type", "application/x-ndjson")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatal(w.Code)
		}
	}
}

type discardSink struct{}

func (discardSink) Line(*Line) {}
