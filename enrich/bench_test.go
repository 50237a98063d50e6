package enrich

import (
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

type discard struct{ n int }

func (d *discard) Publish(id, source []byte) error { d.n += len(source); return nil }
func (d *discard) Replace(id, source []byte) error { d.n += len(source); return nil }

func benchEvent() *proxy.AccessEvent {
	ev := accessEvent(7, 7394857349857, t0, 12400*time.Microsecond, "GET", "/api/cart/items", 200)
	ev.Query = append(ev.Query, "page=2&sort=price"...)
	ev.ClientIP = append(ev.ClientIP, "203.0.113.9"...)
	ev.UserAgent = append(ev.UserAgent, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"...)
	ev.RequestID = append(ev.RequestID, "2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17"...)
	ev.Upstream = append(ev.Upstream, "127.0.0.1:5000"...)
	ev.TraceID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ev.BytesOut = 1234
	return ev
}

// BenchmarkEncodeAccess: one access event to its published document
// (level, marking, message, encoding, _id), as the worker does it.
func BenchmarkEncodeAccess(b *testing.B) {
	pub := &discard{}
	opts := testOptions()
	opts.ServiceName = "shop"
	opts.Mark = MarkAll
	a := newTestAssembler(pub, opts)
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		a.accessDoc(ev)
		a.publish()
		a.commit()
	}
	b.SetBytes(int64(pub.n / b.N))
}

// BenchmarkEncodeAccessError: a 5xx event with a response body and a proxy error.
func BenchmarkEncodeAccessError(b *testing.B) {
	pub := &discard{}
	opts := testOptions()
	opts.ServiceName = "shop"
	a := newTestAssembler(pub, opts)
	ev := benchEvent()
	ev.Status = 502
	ev.ProxyError = append(ev.ProxyError, "upstream refused connection"...)
	ev.ErrorBody = append(ev.ErrorBody, `{"error":"database unavailable","code":"DB_DOWN"}`...)
	b.ReportAllocs()
	for b.Loop() {
		a.accessDoc(ev)
		a.publish()
		a.commit()
	}
}

func BenchmarkParseLine(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"text-python", "ERROR:app.payments:charge failed for order 1234 after 3 attempts"},
		{"text-logback", "10:00:02.001 [http-nio-8080-exec-4] WARN  com.example.shop.RateLimiter - client 10.0.0.7 over limit"},
		{"text-logback-marker", "10:00:02.001 [http-nio-8080-exec-4] WARN  com.example.shop.RateLimiter - [openReplaySession.id=7394857349857] client 10.0.0.7 over limit"},
		{"json-pino", `{"level":50,"time":1714557600456,"pid":17,"hostname":"web-1","reqId":"req-5b2e9c71a0d84f3b","err":{"type":"TypeError","message":"Cannot read properties of undefined","stack":"TypeError: Cannot read properties of undefined\n    at total (/app/src/cart.js:14:22)"},"msg":"checkout failed"}`},
		{"json-escaped", `{"level":"info","msg":"user \"bob\" logged in from caf\u00e9","ts":1714557600.123}`},
		{"logfmt-slog", `time=2024-05-01T10:00:01.250Z level=ERROR msg="query failed" err="pq: relation \"carts\" does not exist" request_id=01HWX3K9Q7ZP4M2B8N6C5D1E0F`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lp lineParser
			line := []byte(bc.line)
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				lp.parse(line)
			}
		})
	}
}

// BenchmarkBackendLine: one captured line to its published document
// (grouping, parsing, attribution with 100 requests in flight, encoding).
func BenchmarkBackendLine(b *testing.B) {
	pub := &discard{}
	opts := testOptions()
	opts.ServiceName = "shop"
	a := newTestAssembler(pub, opts)
	for i := range uint64(100) {
		a.attr.RequestStarted(&proxy.RequestStart{Seq: i + 1, Start: t0, Session: i + 1})
	}
	l := &capture.Line{Time: t0.Add(time.Millisecond), Stream: capture.Stderr,
		Text: []byte(`{"level":"info","msg":"cart loaded","request_id":"2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17","items":3}`)}
	b.ReportAllocs()
	for b.Loop() {
		a.addLine(l, l.Time)
	}
}

// BenchmarkBackendLineMarked: a line with the guide's marker, checked
// against 100 requests in flight: of its own session (found somewhere in
// the scan) or of none (the whole window is scanned before it is text).
func BenchmarkBackendLineMarked(b *testing.B) {
	for _, bc := range []struct {
		name    string
		session string
	}{{"own-session", "50"}, {"forged", "999"}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := testOptions()
			opts.ServiceName = "shop"
			a := newTestAssembler(&discard{}, opts)
			for i := range uint64(100) {
				a.attr.RequestStarted(&proxy.RequestStart{Seq: i + 1, Start: t0, Session: i + 1})
			}
			l := &capture.Line{Time: t0.Add(time.Millisecond), Stream: capture.Stderr,
				Text: []byte(`{"level":"info","msg":"[openReplaySession.id=` + bc.session + `] cart loaded","items":3}`)}
			b.ReportAllocs()
			for b.Loop() {
				a.addLine(l, l.Time)
			}
		})
	}
}

// BenchmarkRequestObserved: what the proxy's goroutine pays per request
// (RequestStarted and RequestFinished; the worker drains the queue).
func BenchmarkRequestObserved(b *testing.B) {
	opts := testOptions()
	opts.Publisher = &discard{}
	p, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	p.Start()
	defer p.Close(b.Context())
	rs := &proxy.RequestStart{Session: 42, Source: proxy.SourceHeader, Method: []byte("GET"), Path: []byte("/api/cart/items"),
		RequestID: []byte("2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17")}
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		rs.Seq, rs.Start = seq, time.Now()
		p.RequestStarted(rs)
		ev := proxy.AcquireEvent()
		ev.Seq, ev.Start, ev.Duration, ev.Status, ev.Session = seq, rs.Start, time.Millisecond, 200, 42
		ev.Method, ev.Path = append(ev.Method[:0], rs.Method...), append(ev.Path[:0], rs.Path...)
		p.RequestFinished(ev)
	}
}

// BenchmarkFindRequest: reading the request a record's first line names,
// which the worker does for every record from a pipe.
func BenchmarkFindRequest(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"flask-exception", "ERROR:app:Exception on /api/cart [GET]"},
		{"werkzeug-access", `INFO:werkzeug:127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart?id=9 HTTP/1.1" 500 -`},
		{"no-request", "ERROR:app.payments:charge failed for order 1234 after 3 attempts"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			line := []byte(bc.line)
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				findRequest(line)
			}
		})
	}
}

// BenchmarkBackendLineNamed: an access line naming its request, read while
// 100 requests are in flight and 2000 ended within the last second (the
// whole reach of an access line is scanned).
func BenchmarkBackendLineNamed(b *testing.B) {
	pub := &discard{}
	opts := testOptions()
	opts.ServiceName = "shop"
	a := newTestAssembler(pub, opts)
	paths := [][]byte{[]byte("/api/cart"), []byte("/api/products"), []byte("/api/user"), []byte("/api/endpoint")}
	seq := uint64(0)
	for i := range 2000 {
		seq++
		at := t0.Add(time.Duration(i) * 500 * time.Microsecond)
		a.attr.RequestStarted(&proxy.RequestStart{Seq: seq, Start: at, Session: seq%50 + 1, Method: []byte("GET"), Path: paths[i%len(paths)]})
		a.attr.RequestFinished(accessEvent(seq, seq%50+1, at, time.Millisecond, "GET", string(paths[i%len(paths)]), 200))
	}
	now := t0.Add(time.Second)
	for i := range 100 {
		seq++
		a.attr.RequestStarted(&proxy.RequestStart{Seq: seq, Start: now, Session: seq%50 + 1, Method: []byte("POST"), Path: paths[i%len(paths)]})
	}
	l := &capture.Line{Time: now.Add(time.Millisecond), Stream: capture.Stderr,
		Text: []byte(`INFO:werkzeug:127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/orders/7 HTTP/1.1" 200 -`)}
	b.ReportAllocs()
	for b.Loop() {
		a.addLine(l, l.Time)
	}
}

// BenchmarkAttributorRequest: the Attributor's share of what the proxy's
// goroutine pays per request (RequestStarted, and finish as
// Enricher.RequestFinished calls it). Active: at 1000 requests per second
// of request time with 8 in flight, each with its own request id and trace
// id, so that ids expire as fast as they come (the id capacity is the
// bound) and finished requests leave the window as fast. Idle: made for
// pushed lines only, before the first line.
func BenchmarkAttributorRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		o    Options
	}{{"active", Options{}}, {"idle", Options{PushedLinesOnly: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			bc.o.AttributionGrace = grace
			l := newRequestLoad(newAttributor(bc.o), 1<<18, time.Millisecond)
			for range 3 * idCapacity { // every table at its bound
				l.next()
			}
			b.ReportAllocs()
			for b.Loop() {
				l.next()
			}
		})
	}
}
