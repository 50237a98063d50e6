package enrich

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// Enricher is package enrich as the rest of replaylink sees it: the proxy's
// Observer, capture's Sink, and one worker goroutine that turns what they
// hand over into documents for the Publisher.
//
// Goroutines: RequestStarted and RequestFinished run on the proxy's request
// goroutines and Line on capture's. They touch only the Attributor (a mutex
// held for map operations) and two bounded queues, and drop what does not
// fit (counted in replaylink_dropped_total) rather than wait. The worker
// owns everything else (the assembler: grouper, parser, marking policy,
// encoder) and is the only caller of the Publisher, once per round (see run).
type Enricher struct {
	attr *Attributor
	asm  *assembler // owned by the worker goroutine

	events       chan *proxy.AccessEvent
	wake         chan struct{} // RequestFinished -> an idle worker (capacity 1)
	idle         atomic.Bool   // the worker waits for a wake to take events
	lines        chan *queuedLine
	lineBytes    atomic.Int64 // bytes of the lines in the queue
	maxLineBytes int64
	tickEvery    time.Duration

	closeMu sync.RWMutex // senders hold it shared, so none sends after Close drains
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	start   sync.Once
}

var (
	_ proxy.Observer = (*Enricher)(nil)
	_ capture.Sink   = (*Enricher)(nil)
)

// queuedLine is a line copied out of capture's buffer for the worker.
type queuedLine struct {
	capture.Line
	buf []byte
}

var linePool = sync.Pool{New: func() any { return new(queuedLine) }}

// New checks o and returns an enricher; Start runs its worker.
func New(o Options) (*Enricher, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withInternalDefaults()
	attr := newAttributor(o)
	return &Enricher{
		attr:         attr,
		asm:          newAssembler(o, attr, instancePrefix()),
		events:       make(chan *proxy.AccessEvent, o.QueueSize),
		wake:         make(chan struct{}, 1),
		lines:        make(chan *queuedLine, o.QueueSize),
		maxLineBytes: int64(o.LineQueueBytes),
		tickEvery:    max(o.GroupIdle/4, 10*time.Millisecond),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}, nil
}

// instancePrefix starts every _id this process assigns: 12 random hex digits
// and '-', then a sequence number in base 36. Ids are assigned when a
// document is made, so a resend after a failed bulk request reuses them and
// Elasticsearch does not store the document twice.
func instancePrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:]) + "-"
}

// Start runs the worker goroutine. Calling it again does nothing.
func (p *Enricher) Start() {
	p.start.Do(func() { go p.run() })
}

// RequestStarted records a request going upstream, for attribution.
func (p *Enricher) RequestStarted(s *proxy.RequestStart) { p.attr.RequestStarted(s) }

// RequestFinished records the end of a request and queues its access event
// for the worker, which releases it. When the queue is full the event is
// dropped and counted.
func (p *Enricher) RequestFinished(ev *proxy.AccessEvent) {
	p.attr.finish(ev)
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		droppedClosed.Inc()
		ev.Release()
		return
	}
	select {
	case p.events <- ev:
		if p.idle.Load() && p.idle.CompareAndSwap(true, false) {
			p.wakeWorker()
		}
	default:
		// The place for a spill to the spool, when there is one.
		droppedEventQueueFull.Inc()
		ev.Release()
	}
}

func (p *Enricher) wakeWorker() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Line queues a copy of a captured line for the worker. When the queue is
// full (in lines or bytes) the line is dropped and counted; capture has
// passed it through to replaylink's own output already.
func (p *Enricher) Line(l *capture.Line) {
	p.attr.noteLine()
	n := int64(len(l.Text))
	if p.lineBytes.Add(n) > p.maxLineBytes {
		p.lineBytes.Add(-n)
		droppedLineQueueFull.Inc()
		return
	}
	q := linePool.Get().(*queuedLine)
	q.buf = append(q.buf[:0], l.Text...)
	q.Line = *l
	q.Text = q.buf
	if q.Time.IsZero() {
		q.Time = time.Now()
	}
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		droppedClosed.Inc()
		p.releaseLine(q)
		return
	}
	select {
	case p.lines <- q:
	default:
		droppedLineQueueFull.Inc()
		p.releaseLine(q)
	}
}

func (p *Enricher) releaseLine(q *queuedLine) {
	p.lineBytes.Add(-int64(len(q.buf)))
	q.Line = capture.Line{}
	linePool.Put(q)
}

// Close stops taking events and lines, completes every pending multi-line
// record, publishes everything queued, and stops the worker. If ctx ends
// first, Close returns its error and the worker finishes on its own.
func (p *Enricher) Close(ctx context.Context) error {
	p.closeMu.Lock()
	first := !p.closed
	p.closed = true
	p.closeMu.Unlock()
	if first {
		close(p.stop)
	}
	p.Start() // an enricher that was never started still publishes what it took
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("enrich: closing before all documents were published: %w", ctx.Err())
	}
}

// run is the worker. It takes access events in rounds: woken by the first
// event after it went idle, it lets the request goroutines that are ready
// run first (runtime.Gosched), then takes every event queued by then and
// publishes the round's documents with one call (Round: one spool write).
// Waking it for each event instead, as a channel receive does, cost a
// goroutine switch and a spool write per request (see docs/benchmarks.md).
// Idle, a round is one event and Gosched returns at once, so a document
// still reaches the spool microseconds after its response.
func (p *Enricher) run() {
	defer close(p.done)
	ticker := time.NewTicker(p.tickEvery)
	defer ticker.Stop()
	for {
		// Idle until the next event wakes it; an event queued before the
		// flag was up found it busy and sent no wake, so look again.
		p.idle.Store(true)
		if len(p.events) > 0 && p.idle.CompareAndSwap(true, false) {
			p.wakeWorker()
		}
		select {
		case <-p.wake:
			runtime.Gosched()
		case q := <-p.lines:
			p.takeLine(q)
		case <-ticker.C:
			// Lines and events already queued come before the idle check:
			// a traceback whose last lines wait in the queue is not idle.
			p.drain()
			p.asm.tick(time.Now())
		case <-p.stop:
			p.drain()
			p.asm.flushAll()
			p.asm.commit()
			return
		}
		p.drain()
		p.asm.commit()
	}
}

func (p *Enricher) takeLine(q *queuedLine) {
	p.asm.addLine(&q.Line, time.Now())
	p.releaseLine(q)
}

// yieldEvery paces a round: with a backlog (after a pause of the process,
// or a burst), a round takes hundreds of queued events, and taking them in
// one go kept the only processor (GOMAXPROCS=1) for milliseconds while
// requests waited. Every yieldEvery events and lines (at about 2.5 µs an
// event, some 0.3 ms) the worker lets the ready request goroutines run; the
// round, and its group commit, stay whole.
const yieldEvery = 128

// drain takes what is queued now (not what keeps arriving meanwhile).
func (p *Enricher) drain() {
	for n := len(p.events) + len(p.lines); n > 0; n-- {
		if n%yieldEvery == 0 {
			runtime.Gosched()
		}
		select {
		case ev := <-p.events:
			p.asm.addEvent(ev, time.Now())
		case q := <-p.lines:
			p.takeLine(q)
		default:
			return
		}
	}
}
