package enrich

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

func TestAccessDocument(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		proxy   string
		body    string
		level   string
		message string
		errType string
	}{
		{"ok", 200, "", "", "info", "[openReplaySession.id=42] GET /api/cart -> 200 (12.4 ms)", ""},
		{"client error", 404, "", "", "warning", "[openReplaySession.id=42] GET /api/cart -> 404 (12.4 ms)", ""},
		{"client went away", 499, "client closed the connection", "", "warning", "[openReplaySession.id=42] GET /api/cart -> 499 (12.4 ms) client closed the connection", "ProxyError"},
		{"server error with a JSON body", 500, "", "{\"error\":\"cart_id missing\"}\n", "error", `[openReplaySession.id=42] GET /api/cart -> 500 (12.4 ms) {"error":"cart_id missing"}`, ""},
		{"server error with an HTML page", 500, "", "<!doctype html><title>500</title>", "error", "[openReplaySession.id=42] GET /api/cart -> 500 (12.4 ms)", ""},
		{"upstream refused", 502, "upstream refused connection", "", "error", "[openReplaySession.id=42] GET /api/cart -> 502 (12.4 ms) upstream refused connection", "ProxyError"},
		{"upstream timeout", 504, "upstream sent no response headers within 60s", "", "error", "[openReplaySession.id=42] GET /api/cart -> 504 (12.4 ms) upstream sent no response headers within 60s", "ProxyError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			opts := testOptions()
			opts.ServiceName = "shop"
			a := newTestAssembler(rec, opts)
			ev := accessEvent(7, 42, t0, 12_400*time.Microsecond+40*time.Microsecond, "GET", "/api/cart", tc.status)
			ev.Query = append(ev.Query, "id=9&token=REDACTED"...)
			ev.ClientIP = append(ev.ClientIP, "203.0.113.9"...)
			ev.UserAgent = append(ev.UserAgent, "Mozilla/5.0 \x1b[31m"...)
			ev.RequestID = append(ev.RequestID, "01HWX3K9Q7ZP4M2B8N6C5D1E0F"...)
			ev.Upstream = append(ev.Upstream, "127.0.0.1:5000"...)
			ev.BytesIn, ev.BytesOut = 10, 345
			ev.TraceID = [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
			ev.SpanID = [8]byte{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
			ev.ProxyError = append(ev.ProxyError, tc.proxy...)
			ev.ErrorBody = append(ev.ErrorBody, tc.body...)
			a.addEvent(ev, t0)
			a.flushAll()
			docs := rec.decoded(t)
			if len(docs) != 1 {
				t.Fatalf("%d documents", len(docs))
			}
			d := docs[0]
			for path, want := range map[string]any{
				"message": tc.message, "level": tc.level, "@timestamp": "2024-05-01T10:00:00.000Z",
				"openReplaySession.id": "42", "openReplaySession.source": "header", "replaylink.attribution": "exact",
				"event.dataset": "replaylink.access", "event.duration": "12440000",
				"http.request.method": "GET", "http.request.id": "01HWX3K9Q7ZP4M2B8N6C5D1E0F", "http.request.bytes": "10",
				"http.response.status_code": fmt.Sprint(tc.status), "http.response.bytes": "345",
				"url.path": "/api/cart", "url.query": "id=9&token=REDACTED", "client.ip": "203.0.113.9",
				"user_agent.original": "Mozilla/5.0 \x1b[31m", // not a message: kept, escaped
				"trace.id":            "4bf92f3577b34da6a3ce929d0e0e4736", "span.id": "00f067aa0ba902b7",
				"service.name": "shop", "host.name": "host-1", "replaylink.upstream": "127.0.0.1:5000",
			} {
				if got := field(d, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if got, _ := field(d, "error.type").(string); got != tc.errType {
				t.Errorf("error.type = %q, want %q", got, tc.errType)
			}
			if got, _ := field(d, "http.response.body.content").(string); got != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
			if rec.ids[0] != "test-1" {
				t.Errorf("_id %q", rec.ids[0])
			}
		})
	}
}

func TestAccessDocumentWithoutSession(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	a.addEvent(accessEvent(1, 0, t0, time.Millisecond, "POST", "/login", 200), t0)
	d := rec.decoded(t)[0]
	if d["openReplaySession"] != nil || field(d, "replaylink.attribution") != "none" || d["message"] != "POST /login -> 200 (1.0 ms)" {
		t.Errorf("got %v", d)
	}
}

func TestAppendDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.0 ms", 40 * time.Microsecond: "0.0 ms", 50 * time.Microsecond: "0.1 ms", 12_449 * time.Microsecond: "12.4 ms",
		9_999_950 * time.Microsecond: "10000.0 ms", 10 * time.Second: "10.0 s", 75_250 * time.Millisecond: "75.3 s",
	} {
		if got := string(appendDuration(nil, d)); got != want {
			t.Errorf("appendDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// flaskFailure is what the guide's app prints for GET /api/cart.
var flaskFailure = []string{
	"ERROR:app:Exception on /api/cart [GET]",
	"Traceback (most recent call last):",
	`  File "/app/app.py", line 61, in api_cart`,
	`    return {"cart": cart["cart_id"]}`,
	"KeyError: 'cart_id'",
}

const werkzeugLine = `INFO:werkzeug:127.0.0.1 - - [01/May/2024 10:00:01] "GET /api/cart HTTP/1.1" 500 -`

// TestMergeTracebackIntoAccessDocument: a request that raises becomes one
// error document with the session, the access event and the traceback,
// whichever of the event and the traceback reaches the worker first.
func TestMergeTracebackIntoAccessDocument(t *testing.T) {
	for _, eventFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("eventFirst=%v", eventFirst), func(t *testing.T) {
			rec := &recorder{}
			opts := testOptions()
			opts.ServiceName = "shop"
			a := newTestAssembler(rec, opts)
			a.attr.RequestStarted(&proxy.RequestStart{Seq: 9, Start: ms(0), Session: 42, Source: proxy.SourceHeader})
			ev := accessEvent(9, 42, ms(0), 12400*time.Microsecond, "GET", "/api/cart", 500)
			ev.ErrorBody = append(ev.ErrorBody, "<!doctype html><title>500 Internal Server Error</title>"...)
			a.attr.finish(ev)
			if eventFirst {
				a.addEvent(ev, ms(13))
			}
			for i, l := range flaskFailure {
				a.addLine(lineAt(ms(5+i/4), capture.Stderr, l), ms(14))
			}
			a.addLine(lineAt(ms(13), capture.Stderr, werkzeugLine), ms(14)) // ends the traceback
			if !eventFirst {
				a.addEvent(ev, ms(15))
			}
			a.tick(ms(16))
			a.flushAll()
			docs := rec.decoded(t)
			if len(docs) != 2 {
				t.Fatalf("%d documents, want the merged error and werkzeug's line", len(docs))
			}
			var merged map[string]any
			for _, d := range docs {
				if field(d, "event.dataset") == "replaylink.access" {
					merged = d
				}
			}
			if merged == nil {
				t.Fatal("no access document")
			}
			for path, want := range map[string]any{
				"message":                    "[openReplaySession.id=42] GET /api/cart -> 500 (12.4 ms) KeyError: 'cart_id'",
				"level":                      "error",
				"openReplaySession.id":       "42",
				"error.type":                 "KeyError",
				"error.message":              "'cart_id'",
				"error.stack_trace":          strings.Join(flaskFailure, "\n"),
				"log.logger":                 "app",
				"http.response.body.content": "<!doctype html><title>500 Internal Server Error</title>",
			} {
				if got := field(merged, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if tags := fmt.Sprint(merged["tags"]); tags != "[error access backend]" {
				t.Errorf("tags %s", tags)
			}
			if len(a.held)+len(a.parked) != 0 {
				t.Errorf("left waiting: %d held, %d parked", len(a.held), len(a.parked))
			}
			// The event first: its document was published when it came,
			// and replaced by the merged one. The traceback first: it
			// waited for the event, and one document was published.
			if want := map[bool]int{true: 1, false: 0}[eventFirst]; rec.replaced() != want {
				t.Errorf("%d replacements, want %d", rec.replaced(), want)
			}
		})
	}
}

// TestMergeAfterPreflight is a page calling the Flask example from another
// origin: the previous call ends, the browser sends a CORS preflight without
// the session, then the call that raises. The traceback names its request,
// so it is still folded into that request's error document, and werkzeug's
// access lines go to the requests they name.
func TestMergeAfterPreflight(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	type call struct {
		seq, session uint64
		method, path string
		preflight    bool
		from, to     time.Time
		status       int
	}
	begin := func(c call) {
		a.attr.RequestStarted(&proxy.RequestStart{Seq: c.seq, Start: c.from, Session: c.session,
			Method: []byte(c.method), Path: []byte(c.path), Preflight: c.preflight})
	}
	end := func(c call) {
		ev := accessEvent(c.seq, c.session, c.from, c.to.Sub(c.from), c.method, c.path, c.status)
		a.attr.finish(ev)
		a.addEvent(ev, c.to)
	}
	line := func(at time.Time, text string) { a.addLine(lineAt(at, capture.Stderr, text), at) }
	access := func(c call) string {
		return fmt.Sprintf(`INFO:werkzeug:127.0.0.1 - - [01/May/2024 10:00:01] "%s %s HTTP/1.1" %d -`, c.method, c.path, c.status)
	}
	endpoint := call{1, 42, "GET", "/api/endpoint", false, ms(90), ms(101), 200}
	preflight := call{2, 0, "OPTIONS", "/api/cart", true, ms(100), ms(102), 200}
	cart := call{3, 42, "GET", "/api/cart", false, ms(103), ms(110), 500}

	begin(endpoint)
	line(ms(95), "INFO:root:Endpoint accessed")
	begin(preflight)
	end(endpoint)
	line(ms(101), access(endpoint))
	end(preflight)
	line(ms(102), access(preflight))
	begin(cart)
	for i, l := range flaskFailure {
		line(ms(105+i/4), l)
	}
	end(cart)
	line(ms(111), access(cart))
	a.tick(ms(111).Add(a.hold))
	a.flushAll()

	type got struct{ session, attribution, tags string }
	var docs []got
	for _, d := range rec.decoded(t) {
		s, _ := field(d, "openReplaySession.id").(string)
		docs = append(docs, got{s, field(d, "replaylink.attribution").(string), fmt.Sprint(d["tags"])})
		if strings.Contains(field(d, "message").(string), "KeyError") &&
			(field(d, "event.dataset") != "replaylink.access" || s != "42" || field(d, "replaylink.merged_by") != "window") {
			t.Errorf("the traceback was not folded into its request's document: %v", d)
		}
	}
	want := []got{
		{"42", "exact", "[access]"},               // GET /api/endpoint
		{"42", "window", "[backend]"},             // Endpoint accessed
		{"", "none", "[access]"},                  // the preflight
		{"42", "window", "[backend]"},             // werkzeug: GET /api/endpoint
		{"", "none", "[backend]"},                 // werkzeug: the preflight
		{"42", "exact", "[error access backend]"}, // GET /api/cart and its traceback
		{"42", "window", "[backend]"},             // werkzeug: GET /api/cart
	}
	if fmt.Sprint(docs) != fmt.Sprint(want) {
		t.Errorf("documents (session, attribution, tags):\n got %v\nwant %v", docs, want)
	}
}

// TestNamedRequestInAnyFormat: the request a line names is read from
// werkzeug's colored access line and from a JSON line's message.
func TestNamedRequestInAnyFormat(t *testing.T) {
	for _, text := range []string{
		"INFO:werkzeug:127.0.0.1 - - [01/May/2024 10:00:01] \"\x1b[35m\x1b[1mGET /api/cart HTTP/1.1\x1b[0m\" 500 -",
		`{"level":"info","logger":"uvicorn.access","msg":"127.0.0.1:5000 - \"GET /api/cart?id=9 HTTP/1.1\" 500"}`,
	} {
		rec := &recorder{}
		opts := testOptions()
		a := newTestAssembler(rec, opts)
		a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 42, Method: []byte("GET"), Path: []byte("/api/cart")})
		a.attr.RequestStarted(&proxy.RequestStart{Seq: 2, Start: ms(1), Session: 43, Method: []byte("GET"), Path: []byte("/api/products")})
		a.addLine(lineAt(ms(5), capture.Stderr, text), ms(5))
		a.flushAll()
		docs := rec.decoded(t)
		if len(docs) != 1 || field(docs[0], "openReplaySession.id") != "42" {
			t.Errorf("%q: %v", text, docs)
		}
	}
}

// TestMergeTiming: whichever of a 5xx event and its traceback comes first,
// and however late the other, nothing waits unpublished for longer than
// parkWait (a SIGKILL loses nothing the client was answered about), and the
// index ends up with one error document when the two meet within hold, two
// when they do not.
func TestMergeTiming(t *testing.T) {
	const (
		E = "E" // the 5xx event
		T = "T" // the traceback, complete
	)
	type step struct {
		what string
		at   time.Duration // after the request's end
	}
	for _, tc := range []struct {
		name  string
		steps []step
		ops   string // the publisher's calls for error documents: P (Publish) or R (Replace), the _id's number, the tags
		final int    // documents in the index
	}{
		{"event, then traceback", []step{{E, 0}, {T, 100 * time.Millisecond}}, "P1[error access] R1[error access backend]", 1},
		{"event, traceback after hold", []step{{E, 0}, {T, 600 * time.Millisecond}}, "P1[error access] P2[error backend]", 2},
		{"traceback, then event", []step{{T, 0}, {E, 10 * time.Millisecond}}, "P1[error access backend]", 1},
		{"traceback, event after parkWait", []step{{T, 0}, {E, 200 * time.Millisecond}}, "P1[error backend] R1[error access backend]", 1},
		{"traceback, event after hold", []step{{T, 0}, {E, 600 * time.Millisecond}}, "P1[error backend] P3[error access]", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			opts := testOptions()
			a := newTestAssembler(rec, opts)
			if a.hold != 520*time.Millisecond || a.wait != parkWait {
				t.Fatalf("hold %v, wait %v: the steps assume the defaults", a.hold, a.wait)
			}
			a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 42})
			ev := accessEvent(1, 42, ms(0), 10*time.Millisecond, "GET", "/api/cart", 500)
			a.attr.finish(ev)
			end := ms(10)
			now := end
			for _, s := range tc.steps {
				// Time passes in ticks, as in the worker.
				for ; now.Before(end.Add(s.at)); now = now.Add(10 * time.Millisecond) {
					a.tick(now)
					if n := overdue(a, now); n > 0 {
						t.Fatalf("%d records unpublished for longer than parkWait at %v", n, now.Sub(end))
					}
				}
				switch s.what {
				case E:
					a.addEvent(ev, now)
					if !strings.Contains(tc.ops, "P1[error backend]") && len(rec.docs) == 0 {
						t.Errorf("the 5xx event was not published when it came")
					}
				case T:
					for _, l := range flaskFailure {
						a.addLine(lineAt(ms(5), capture.Stderr, l), now) // printed while the request ran
					}
					a.addLine(lineAt(now, capture.Stderr, "INFO:app:next record"), now) // completes the traceback
				}
			}
			for ; now.Before(end.Add(time.Second)); now = now.Add(10 * time.Millisecond) {
				a.tick(now)
				if n := overdue(a, now); n > 0 {
					t.Fatalf("%d records unpublished for longer than parkWait at %v", n, now.Sub(end))
				}
			}
			a.flushAll()
			docs := rec.decoded(t)
			var ops []string
			for _, o := range rec.ops {
				var d struct{ Tags []string }
				_ = json.Unmarshal(o.doc, &d)
				if slices.Contains(d.Tags, "error") {
					ops = append(ops, fmt.Sprintf("%s%s%v", map[bool]string{false: "P", true: "R"}[o.replace], strings.TrimPrefix(o.id, "test-"), d.Tags))
				}
			}
			if got := strings.Join(ops, " "); got != tc.ops {
				t.Errorf("publisher calls %s, want %s", got, tc.ops)
			}
			var errs int
			for _, d := range docs {
				if d["level"] == "error" {
					errs++
					if field(d, "openReplaySession.id") != "42" {
						t.Errorf("error document without its session: %v", d)
					}
				}
			}
			if errs != tc.final {
				t.Errorf("%d error documents in the index, want %d", errs, tc.final)
			}
			if len(a.held)+len(a.parked) != 0 {
				t.Errorf("left waiting: %d held, %d parked", len(a.held), len(a.parked))
			}
		})
	}
}

// overdue counts the backend records that have waited unpublished for
// longer than parkWait and a tick (5xx events are published when they come).
func overdue(a *testAssembler, now time.Time) int {
	n := 0
	for _, pg := range a.parked {
		if parkedAt := pg.expires.Add(-a.hold); pg.docSeq == 0 && now.Sub(parkedAt) > parkWait+10*time.Millisecond {
			n++
		}
	}
	return n
}

// TestMergeReplacedByOKEvent: a backend error published alone after
// parkWait stays as it is when its request's event turns out not to be an
// error.
func TestMergeReplacedByOKEvent(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 42})
	for _, l := range flaskFailure {
		a.addLine(lineAt(ms(1), capture.Stderr, l), ms(1))
	}
	a.tick(ms(1).Add(a.grouper.idle)) // completes the traceback: window-attributed to request 1, still running
	a.tick(ms(1).Add(a.grouper.idle + parkWait))
	if len(rec.docs) != 1 || len(a.parked) != 1 {
		t.Fatalf("published %d, parked %d", len(rec.docs), len(a.parked))
	}
	ev := accessEvent(1, 42, ms(0), 400*time.Millisecond, "GET", "/a", 200)
	a.attr.finish(ev)
	a.addEvent(ev, ms(400))
	a.flushAll()
	docs := rec.decoded(t)
	if len(docs) != 2 || rec.replaced() != 0 || field(docs[0], "error.type") != "KeyError" || field(docs[1], "http.response.status_code") != "200" {
		t.Errorf("got %d documents, %d replaced: %v", len(docs), rec.replaced(), docs)
	}
}

// TestErrorInSuccessfulRequest: a backend error logged in a request that
// still answered 200 is not folded into its access document.
func TestErrorInSuccessfulRequest(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	a.attr.RequestStarted(&proxy.RequestStart{Seq: 3, Start: ms(0), Session: 42})
	a.addLine(lineAt(ms(1), capture.Stderr, "ERROR:app:payment retry failed"), ms(1))
	a.addLine(lineAt(ms(2), capture.Stderr, "INFO:app:fell back to cache"), ms(2))
	ev := accessEvent(3, 42, ms(0), 3*time.Millisecond, "GET", "/pay", 200)
	a.attr.finish(ev)
	a.addEvent(ev, ms(4))
	docs := rec.decoded(t)
	if len(docs) != 2 {
		t.Fatalf("%d documents", len(docs))
	}
	if docs[0]["level"] != "error" || field(docs[0], "event.dataset") != "replaylink.backend" ||
		docs[1]["level"] != "info" || field(docs[1], "event.dataset") != "replaylink.access" {
		t.Errorf("got %v", docs)
	}
	a.flushAll()
}

// TestMarkingAcrossDocuments: access and backend info documents of a
// session share its info limit; problems are always marked; every document
// names the session.
func TestMarkingAcrossDocuments(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.MarkInfoLimit = 3
	a := newTestAssembler(rec, opts)
	a.hold = 0
	for i := range 4 {
		at := ms(i * 100)
		seq := uint64(i + 1)
		a.attr.RequestStarted(&proxy.RequestStart{Seq: seq, Start: at, Session: 42})
		a.addLine(lineAt(at.Add(time.Millisecond), capture.Stderr, "INFO:app:step"), at.Add(time.Millisecond))
		status := 200
		if i == 3 {
			status = 500
		}
		ev := accessEvent(seq, 42, at, 2*time.Millisecond, "GET", "/x", status)
		a.attr.finish(ev)
		a.addEvent(ev, at.Add(2*time.Millisecond))
	}
	a.flushAll()
	var marks []string
	for _, d := range rec.decoded(t) {
		if field(d, "openReplaySession.id") != "42" {
			t.Errorf("document without its session: %v", d)
		}
		m := "-"
		if strings.HasPrefix(d["message"].(string), "[openReplaySession.id=42] ") {
			m = "M"
		}
		marks = append(marks, fmt.Sprint(d["level"], ":", m))
	}
	// The last request's access document (error) is published when its
	// event comes; its backend line when it is complete, at the end.
	want := "[info:M info:M info:M info:- info:- info:- error:M info:-]"
	if fmt.Sprint(marks) != want {
		t.Errorf("marks %v, want %s", marks, want)
	}
}

func TestBackendDocumentFromFile(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	a.attr.RequestStarted(&proxy.RequestStart{Seq: 1, Start: ms(0), Session: 42})
	l := lineAt(ms(5), capture.File, `{"time":"2024-04-30T08:00:00.250Z","level":"error","msg":"old failure"}`)
	l.Origin = "/var/log/app/app.log"
	a.addLine(l, ms(5))
	l = lineAt(ms(6), capture.File, `{"time":"2023-01-01T00:00:00Z","level":"info","msg":"implausibly old"}`)
	l.Origin = "/var/log/app/app.log"
	a.addLine(l, ms(6))
	docs := rec.decoded(t)
	if len(docs) != 2 {
		t.Fatalf("%d documents", len(docs))
	}
	d := docs[0]
	for path, want := range map[string]any{
		"@timestamp":             "2024-04-30T08:00:00.250Z", // a file's own time, when it names its zone
		"replaylink.attribution": "none",                     // a file's read time says nothing about requests
		"replaylink.stream":      "file",
		"log.file.path":          "/var/log/app/app.log",
		"message":                "old failure",
	} {
		if got := field(d, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if got := field(docs[1], "@timestamp"); got != "2024-05-01T10:00:00.006Z" {
		t.Errorf("an implausible time is not used: %v", got)
	}
}

// TestParkedRecordKeepsItsFields: a backend error that waited for its
// request's event, and was published alone, still has everything it said.
func TestParkedRecordKeepsItsFields(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	a := newTestAssembler(rec, opts)
	start(a.attr, 5, 42, ms(0), "", "4bf92f3577b34da6a3ce929d0e0e4736")
	const line = `{"level":"error","msg":"boom","request_id":"abc-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}`
	a.addLine(lineAt(ms(1), capture.Stderr, line), ms(1))
	if len(a.parked) != 1 || len(rec.docs) != 0 {
		t.Fatalf("parked %d, published %d", len(a.parked), len(rec.docs))
	}
	a.flushAll()
	d := rec.decoded(t)[0]
	for path, want := range map[string]any{
		"http.request.id": "abc-1", "span.id": "00f067aa0ba902b7", "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736",
		"message": "[openReplaySession.id=42] boom", "openReplaySession.source": "trace-id", "event.original": line,
	} {
		if got := field(d, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
}

// demoFailure is what examples/demo prints for GET /api/cart (make run): a
// one-line error on stdout, then a panic with its goroutine trace on stderr.
func demoFailure(requestID string) (oneLiner string, panicTrace []string) {
	return `time=2024-05-01T10:00:00.005Z level=ERROR msg="checkout failed" request_id=` + requestID + ` err="cart_id missing from the session cart"`,
		[]string{
			"panic: cart_id missing (request_id=" + requestID + ")",
			"",
			"goroutine 21 [running]:",
			"runtime/debug.Stack()",
			"\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e",
			"main.main.func2({0x7600b8, 0x2afd775e2d0}, 0x2afd7780140)",
			"\t/src/examples/demo/main.go:35 +0xc8",
		}
}

// TestFoldPrefersTheRealStack: a request that logs a one-line error and then
// panics keeps one error document, whatever the order in which its event and
// its two records come: the panic names the error (not the one-liner), and
// error.stack_trace holds both records, in the order printed.
func TestFoldPrefersTheRealStack(t *testing.T) {
	const rid = "f71d694e03c111000279b12f0989a4e4"
	oneLiner, panicTrace := demoFailure(rid)
	for _, order := range []string{"E1P", "1EP", "1PE", "E P1", "P1E"} {
		t.Run(order, func(t *testing.T) {
			rec := &recorder{}
			opts := testOptions()
			a := newTestAssembler(rec, opts)
			start(a.attr, 1, 42, ms(0), rid, "")
			ev := accessEvent(1, 42, ms(0), 10*time.Millisecond, "GET", "/api/cart", 500)
			ev.RequestID = append(ev.RequestID, rid...)
			a.attr.finish(ev)
			// Each record is completed at once by the next line of its
			// stream, so the order of the steps is the order in which the
			// assembler sees the event and the two records.
			now := ms(10)
			for _, step := range order {
				switch step {
				case 'E':
					a.addEvent(ev, now)
				case '1':
					a.addLine(lineAt(ms(5), capture.Stdout, oneLiner), now)
					a.addLine(lineAt(now, capture.Stdout, `time=2024-05-01T10:00:01.000Z level=INFO msg="next record"`), now)
				case 'P':
					for _, l := range panicTrace {
						a.addLine(lineAt(ms(6), capture.Stderr, l), now)
					}
					a.addLine(lineAt(now, capture.Stderr, `time=2024-05-01T10:00:01.000Z level=INFO msg="next record"`), now)
				case ' ':
					now = now.Add(parkWait) // a record waiting for its event is published alone
				}
				now = now.Add(10 * time.Millisecond)
				a.tick(now)
			}
			a.flushAll()
			var errs []map[string]any
			for _, d := range rec.decoded(t) {
				if d["level"] == "error" {
					errs = append(errs, d)
				}
			}
			if len(errs) != 1 {
				for _, d := range errs {
					t.Logf("error document: %v", d["message"])
				}
				t.Fatalf("%d error documents, want 1", len(errs))
			}
			d := errs[0]
			for path, want := range map[string]any{
				"event.dataset":        "replaylink.access",
				"message":              "[openReplaySession.id=42] GET /api/cart -> 500 (10.0 ms) panic: cart_id missing (request_id=" + rid + ")",
				"error.type":           "panic",
				"error.stack_trace":    oneLiner + "\n" + strings.Join(panicTrace, "\n"),
				"replaylink.merged_by": "request-id",
			} {
				if got := field(d, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if len(a.held)+len(a.parked) != 0 {
				t.Errorf("left waiting: %d held, %d parked", len(a.held), len(a.parked))
			}
		})
	}
}
