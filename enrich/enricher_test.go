package enrich

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// TestEnricherFlaskRequest plays the "done when": the guide's Flask
// app (without its logging filter) behind replaylink, a request of session
// 42 that raises. The proxy's and capture's calls come from their own
// goroutines; Close publishes what is pending.
func TestEnricherFlaskRequest(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.ServiceName = "shop"
	opts.HostName = "pod-1"
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	begin := time.Now()
	p.RequestStarted(&proxy.RequestStart{Seq: 1, Start: begin, Session: 42, Source: proxy.SourceToken,
		RequestID: []byte("2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17")})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // capture's stderr reader
		defer wg.Done()
		for _, l := range flaskFailure {
			p.Line(&capture.Line{Time: time.Now(), Stream: capture.Stderr, Text: []byte(l)})
		}
	}()
	wg.Wait()
	ev := proxy.AcquireEvent()
	ev.Seq, ev.Start, ev.Duration, ev.Status, ev.Session, ev.Source = 1, begin, time.Since(begin), 500, 42, proxy.SourceToken
	ev.Method, ev.Path = append(ev.Method, "GET"...), append(ev.Path, "/api/cart"...)
	ev.RequestID = append(ev.RequestID, "2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17"...)
	p.RequestFinished(ev)
	p.Line(&capture.Line{Time: time.Now(), Stream: capture.Stderr, Text: []byte(werkzeugLine)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	docs := rec.decoded(t)
	if len(docs) != 2 {
		for _, d := range rec.docs {
			t.Logf("%s", d)
		}
		t.Fatalf("%d documents, want one error document and werkzeug's access line", len(docs))
	}
	var errorDocs int
	for _, d := range docs {
		if d["level"] != "error" {
			continue
		}
		errorDocs++
		msg := d["message"].(string)
		if !regexp.MustCompile(`^\[openReplaySession\.id=42\] GET /api/cart -> 500 \(\d+\.\d ms\) KeyError: 'cart_id'$`).MatchString(msg) {
			t.Errorf("message %q", msg)
		}
		if field(d, "openReplaySession.source") != "token" || field(d, "error.type") != "KeyError" ||
			!strings.Contains(field(d, "error.stack_trace").(string), "Traceback (most recent call last):") ||
			field(d, "host.name") != "pod-1" || field(d, "http.request.id") != "2f6c1e0a-7d9b-4c3e-8a51-6b2d9f0e4c17" {
			t.Errorf("error document %v", d)
		}
	}
	if errorDocs != 1 {
		t.Errorf("%d error documents", errorDocs)
	}
	if rec.ids[0] == rec.ids[1] || !regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-z]+$`).MatchString(rec.ids[0]) {
		t.Errorf("_ids %q", rec.ids)
	}
}

func TestEnricherDropsWhenFull(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.QueueSize = 2
	opts.LineQueueBytes = 10
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Not started: nothing drains the queues.
	events0, lines0 := droppedEventQueueFull.Get(), droppedLineQueueFull.Get()
	for i := range 5 {
		p.RequestFinished(accessEvent(uint64(i+1), 0, time.Now(), time.Millisecond, "GET", "/", 200))
	}
	p.Line(&capture.Line{Time: time.Now(), Stream: capture.Stdout, Text: []byte("12345678")})
	p.Line(&capture.Line{Time: time.Now(), Stream: capture.Stdout, Text: []byte("too many bytes")}) // over LineQueueBytes
	if got := droppedEventQueueFull.Get() - events0; got != 3 {
		t.Errorf("dropped %d events, want 3", got)
	}
	if got := droppedLineQueueFull.Get() - lines0; got != 1 {
		t.Errorf("dropped %d lines, want 1", got)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.docs) != 3 {
		t.Errorf("published %d documents, want the 2 queued events and the queued line", len(rec.docs))
	}
	closed0 := droppedClosed.Get()
	p.RequestFinished(accessEvent(9, 0, time.Now(), time.Millisecond, "GET", "/", 200))
	p.Line(&capture.Line{Time: time.Now(), Stream: capture.Stdout, Text: []byte("late")})
	if got := droppedClosed.Get() - closed0; got != 2 {
		t.Errorf("after Close: %d counted drops, want 2", got)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestEnricherConcurrentCalls runs the proxy's and capture's calls from many
// goroutines at once (for -race) and checks that every request and line
// becomes a document.
func TestEnricherConcurrentCalls(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.Publisher = rec
	opts.GroupIdle = 5 * time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			origin := "10.0.0.1:" + string(rune('a'+w))
			for i := range each {
				seq := uint64(w*each + i + 1)
				begin := time.Now()
				p.RequestStarted(&proxy.RequestStart{Seq: seq, Start: begin, Session: uint64(w + 1)})
				p.Line(&capture.Line{Time: time.Now(), Stream: capture.Ingest, Origin: origin, Text: []byte(`{"level":"info","msg":"work"}`)})
				ev := proxy.AcquireEvent()
				ev.Seq, ev.Start, ev.Duration, ev.Status, ev.Session = seq, begin, time.Since(begin), 200, uint64(w+1)
				ev.Source, ev.Method, ev.Path = proxy.SourceBaggage, append(ev.Method, "GET"...), append(ev.Path, "/x"...)
				p.RequestFinished(ev)
			}
		}()
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.decoded(t)); got != 2*workers*each {
		t.Errorf("%d documents, want %d", got, 2*workers*each)
	}
}

func TestEnricherCloseTimeout(t *testing.T) {
	block := make(chan struct{})
	opts := testOptions()
	opts.Publisher = publisherFunc(func() error { <-block; return nil })
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	p.RequestFinished(accessEvent(1, 0, time.Now(), time.Millisecond, "GET", "/", 200))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a stuck publisher: %v", err)
	}
	close(block)
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("Close after the publisher recovered: %v", err)
	}
}

type publisherFunc func() error

func (f publisherFunc) Publish(id, source []byte) error { return f() }
func (f publisherFunc) Replace(id, source []byte) error { return f() }

func TestOptionsValidate(t *testing.T) {
	ok := testOptions()
	ok.Publisher = &recorder{}
	if err := ok.Validate(); err != nil {
		t.Fatalf("config's defaults with a publisher: %v", err)
	}
	// Zero means what it says where a user may type it.
	zero := ok
	zero.MarkInfoLimit, zero.AttributionGrace = 0, 0
	if err := zero.Validate(); err != nil {
		t.Errorf("--mark-info-limit 0 and --attribution-grace 0: %v", err)
	}
	with := func(set func(*Options)) Options { o := ok; set(&o); return o }
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Publisher is nil"},
		{with(func(o *Options) { o.Mark = MarkMode(7) }), "--mark 7 is not one of auto, all, problems"},
		{with(func(o *Options) { o.Sessionless = SessionlessPolicy(3) }), "--sessionless 3 is not one of all, errors, none"},
		{with(func(o *Options) { o.MarkInfoLimit = 5000 }), "--mark-info-limit 5000: want 0 to 1000"},
		{with(func(o *Options) { o.MarkInfoLimit = -1 }), "--mark-info-limit -1"},
		{with(func(o *Options) { o.AttributionGrace = -time.Millisecond }), "--attribution-grace -1ms: want 0 to 1s"},
		{with(func(o *Options) { o.QueueSize = 0 }), "--event-queue 0: want 1 or more"},
	} {
		err := tc.o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want it to mention %q", tc.o, err, tc.want)
		}
		if _, err := New(tc.o); err == nil {
			t.Errorf("New accepted %+v", tc.o)
		}
	}
}

func TestChoicesText(t *testing.T) {
	var m MarkMode
	if err := m.UnmarshalText([]byte("problems")); err != nil || m != MarkProblems || m.String() != "problems" {
		t.Errorf("--mark problems: %v %v", m, err)
	}
	if err := m.UnmarshalText([]byte("some")); err == nil || !strings.Contains(err.Error(), `"some" is not one of auto, all, problems`) {
		t.Errorf("--mark some: %v", err)
	}
	var p SessionlessPolicy
	if err := p.UnmarshalText([]byte("errors")); err != nil || p != SessionlessErrors || p.String() != "errors" {
		t.Errorf("--sessionless errors: %v %v", p, err)
	}
	if err := p.UnmarshalText([]byte("some")); err == nil || !strings.Contains(err.Error(), `"some" is not one of all, errors, none`) {
		t.Errorf("--sessionless some: %v", err)
	}
}

// --attribution-grace 0 and --mark-info-limit 0 reach the worker as 0:
// nothing replaces them.
func TestZeroSettingsStayZero(t *testing.T) {
	o := testOptions()
	o.Publisher, o.AttributionGrace, o.MarkInfoLimit = &recorder{}, 0, 0
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if p.attr.grace != 0 || p.asm.marking.limit != 0 {
		t.Errorf("grace %v, info limit %d; want 0 and 0", p.attr.grace, p.asm.marking.limit)
	}
}
