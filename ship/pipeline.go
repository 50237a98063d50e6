// Package ship takes finished documents from enrich and gets them into
// Elasticsearch (or, in the embedded default, onto an output as JSON lines)
// exactly once as far as anyone searching can tell: at least once through
// the disk spool (package spool), and without duplicates because every
// document has a deterministic _id and is sent with the create action (a
// Replace with the index action, which overwrites; into a data stream, which
// takes creates only, with a conditional write on the backing index that
// holds the original: datastream.go). With several nodes, requests are
// spread over them (nodePool, nodes.go).
//
// Data flows Publish -> spool (disk) -> one reader goroutine that cuts
// shipments -> Workers goroutines that send them -> in-order acknowledgements
// back to the spool. Publish never waits for Elasticsearch.
package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/internal/choice"
	"github.com/replaylink/replaylink/ship/spool"
)

var _ enrich.RoundPublisher = (*Shipper)(nil)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("ship: closed")

const (
	maxIDBytes       = 512 // Elasticsearch's limit on _id
	maxDocumentBytes = 16 << 20
)

// Options configures a Shipper. The settings a user gives (the spool's,
// the bulk requests', Index, Compression, MemoryDocs) mean what they say
// at zero or New refuses them, naming the flag; their defaults are
// config's. The tuning below them, which no user sets, takes ship's own
// values when zero.
type Options struct {
	SpoolDir      string        // required
	SpoolMaxBytes int64         // spool size cap; more than 0
	SyncInterval  time.Duration // spool fsync interval; more than 0
	FlushBytes    int           // bulk request size; more than 0
	FlushInterval time.Duration // longest wait before a partial bulk goes; more than 0
	Workers       int           // bulk requests in flight; at least 1 (always 1 for Output)

	// Client says how to reach Elasticsearch. Without URLs, documents go to
	// Output instead (the embedded default).
	Client     ClientOptions
	Index      string   // write target; OpenReplay searches "logs"
	DataStream bool     // write to a data stream with Index as its alias; see Target
	Namespace  string   // the data stream's namespace; default "default"
	Replicas   Replicas // of the indices the template makes; zero: suit the cluster
	// InstallTemplate installs the index template (and, with DataStream,
	// the data stream and alias) before the first bulk request.
	InstallTemplate bool
	Compression     Compression // of bulk bodies

	Output io.Writer // embedded default: documents as JSON lines; required without URLs
	// MemoryDocs is how many recent documents are kept in memory for
	// lookups (Store); 0 keeps none, and Store is nil.
	MemoryDocs  int
	MemoryBytes int64 // and at most this much JSON; default 64 MiB

	BackoffMin         time.Duration // first retry wait; default 100 ms
	BackoffMax         time.Duration // longest retry wait; default 30 s
	ItemRetryTime      time.Duration // a document failing with an item-level 5xx this long is dead-lettered; default 10 min
	DeadLetterMaxBytes int64         // dead-letter file cap; default 100 MiB

	Logger zerolog.Logger
}

// withInternalDefaults gives the tuning no user sets ship's own values
// where zero.
func (o *Options) withInternalDefaults() {
	setDefault(&o.MemoryBytes, 64<<20)
	setDefault(&o.BackoffMin, 100*time.Millisecond)
	setDefault(&o.BackoffMax, 30*time.Second)
	setDefault(&o.ItemRetryTime, 10*time.Minute)
	setDefault(&o.DeadLetterMaxBytes, 100<<20)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate refuses the user's settings that cannot work, each by its flag
// and the allowed range.
func (o *Options) validate() error {
	var errs []error
	positive := func(flagName string, v int64, shown any) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("ship: --%s %v: must be greater than zero", flagName, shown))
		}
	}
	positive("spool-max-bytes", o.SpoolMaxBytes, o.SpoolMaxBytes)
	positive("spool-sync-interval", int64(o.SyncInterval), o.SyncInterval)
	positive("flush-bytes", int64(o.FlushBytes), o.FlushBytes)
	positive("flush-interval", int64(o.FlushInterval), o.FlushInterval)
	positive("workers", int64(o.Workers), o.Workers)
	if o.MemoryDocs < 0 {
		errs = append(errs, fmt.Errorf("ship: --memory-store %d: must not be negative (0 keeps no recent documents)", o.MemoryDocs))
	}
	if err := choice.Check("--es-compression", o.Compression, compressionNames); err != nil {
		errs = append(errs, fmt.Errorf("ship: %w", err))
	}
	return errors.Join(errs...)
}

// Shipper is the shipper: it implements enrich.Publisher.
type Shipper struct {
	opts  Options
	log   zerolog.Logger
	queue *spool.Queue
	store *MemoryStore
	dest  destination
	dead  *deadLetters
	// transport is the HTTP transport of the Elasticsearch client, whose
	// idle connections Close closes.
	transport *http.Transport
	// nodes spreads requests over the cluster's nodes; with
	// Client.Discover, discover keeps it up to date until discovered is
	// closed.
	nodes      *nodePool
	discovered chan struct{}
	acks       *ackTracker
	shipments  chan *shipment
	inflight   atomic.Int32  // shipments dispatched and not yet delivered
	idle       chan struct{} // workers -> reader: none in flight (capacity 1)
	drain      chan struct{} // closed by Close: ship what is there, then stop
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closed     atomic.Bool
	once       sync.Once
	err        error
	stats      counters

	roundMu    sync.Mutex // PublishRound's scratch: enrich's worker is its one caller, tests may be more
	spoolBatch *spool.Batch
	kept       []keptDoc // documents of the enrich.Round that went into spoolBatch
	sessionBuf [20]byte  // a session id in decimal, for the memory store
}

// A destination is where shipments go out: Elasticsearch (bulkDestination)
// or the embedded default's output (outputDestination). Each worker gets
// its own deliverer.
type destination interface {
	deliverer() deliverer
	// eager destinations get a shipment as soon as the reader has caught
	// up with the spool; the others wait for FlushBytes, FlushInterval or
	// idleFlush.
	eager() bool
}

type deliverer interface {
	// deliver returns nil when every document of b is settled (shipped or
	// dead-lettered) and b may be acknowledged, or ctx's error.
	deliver(ctx context.Context, b *shipment) error
}

// New opens the spool, replays what it holds, and starts shipping.
func New(opts Options) (*Shipper, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.withInternalDefaults()
	embedded := len(opts.Client.URLs) == 0
	if embedded && opts.Output == nil {
		return nil, errors.New("ship: no Elasticsearch URL and no output: give --es-url, or --output FILE (- for stdout)")
	}
	target := Target{Index: opts.Index, DataStream: opts.DataStream, Namespace: opts.Namespace, Replicas: opts.Replicas}
	if err := target.validate(); err != nil {
		return nil, err
	}
	opts.Client.Logger = opts.Logger
	if embedded {
		opts.Workers = 1 // keep the output in spool order
	}
	p := &Shipper{
		opts:      opts,
		log:       opts.Logger,
		shipments: make(chan *shipment),
		idle:      make(chan struct{}, 1),
		drain:     make(chan struct{}),
	}
	if opts.MemoryDocs > 0 {
		p.store = NewMemoryStore(opts.MemoryDocs, opts.MemoryBytes)
	}
	var discoverWith esapi.Transport // the client, when the nodes are to be discovered
	if embedded {
		p.dest = &outputDestination{w: opts.Output, log: p.log, backoffMin: opts.BackoffMin, backoffMax: opts.BackoffMax, stats: &p.stats}
	} else {
		gzip := opts.Compression.gzipFor(opts.Client.URLs)
		c, err := newClient(opts.Client)
		if err != nil {
			return nil, err
		}
		client := c.es
		p.transport = c.transport
		p.nodes = c.nodes
		bs := &bulkDestination{
			client: client, target: target.WriteName(), log: p.log,
			deadLetters: newDeadLetters(opts.SpoolDir, target.WriteName(), opts.DeadLetterMaxBytes),
			backoffMin:  opts.BackoffMin, backoffMax: opts.BackoffMax, itemRetry: opts.ItemRetryTime,
			stats: &p.stats, gzip: gzip,
		}
		if opts.InstallTemplate {
			bs.setup = func(ctx context.Context) error { return p.setUp(ctx, client, target) }
		}
		p.dead = bs.deadLetters
		p.dest = bs
		if opts.Client.Discover {
			discoverWith = client
		}
	}

	q, err := spool.Open(spool.Options{
		Dir: opts.SpoolDir, MaxBytes: opts.SpoolMaxBytes, SyncInterval: opts.SyncInterval, Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	p.queue = q
	p.acks = newAckTracker(q.Ack)
	p.ctx, p.cancel = context.WithCancel(context.Background())

	st := q.Stats()
	ev := p.log.Info().Str("spool", opts.SpoolDir).Int64("spool_bytes", st.Bytes)
	if embedded {
		ev.Msg("ship: no --es-url: writing documents to the output and keeping recent ones in memory")
	} else {
		ev.Strs("es", redactedURLs(opts.Client.URLs)).Str("target", target.WriteName()).Msg("ship: shipping to Elasticsearch")
	}

	if discoverWith != nil {
		p.discovered = make(chan struct{})
		go p.discover(discoverWith)
	}
	p.wg.Add(1 + opts.Workers)
	go p.read()
	for range opts.Workers {
		go p.work(p.dest.deliverer())
	}
	return p, nil
}

// discover learns the cluster's HTTP nodes now, and again every
// DiscoverInterval (0: never again); until it first succeeds, it tries again
// with backoff. Meanwhile, and whenever it fails, the nodes known go on
// taking requests.
func (p *Shipper) discover(client esapi.Transport) {
	defer close(p.discovered)
	learnt := false
	for attempt := 0; ; {
		err := p.nodes.discover(p.ctx, client)
		if p.ctx.Err() != nil {
			return
		}
		wait := p.opts.Client.DiscoverInterval
		if err != nil {
			p.log.Warn().Err(err).Strs("nodes", p.nodes.hosts()).Msg("ship: could not discover the cluster's nodes; using those known")
			if !learnt {
				wait = backoffDelay(attempt, p.opts.BackoffMin, p.opts.BackoffMax, rand.Float64())
				attempt++
			}
		} else {
			learnt = true
		}
		if wait == 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return
		}
	}
}

// setUp installs the template and the write target, saying what changed.
func (p *Shipper) setUp(ctx context.Context, client esapi.Transport, t Target) error {
	changed, err := InstallTemplate(ctx, client, t)
	if err != nil {
		return err
	}
	if changed {
		p.log.Info().Str("template", t.TemplateName()).Msg("ship: installed the index template")
	}
	changed, err = EnsureWriteTarget(ctx, client, t)
	if err != nil {
		return err
	}
	if changed {
		p.log.Info().Str("target", t.WriteName()).Str("alias", t.Index).Msg("ship: created the write target")
	}
	return nil
}

// Publish spools one document, to be created once: a resend of the same id
// changes nothing (the bulk create action). id is its deterministic _id,
// source its JSON body; neither is kept after the call. It returns once the
// document survives a crash of replaylink (not yet a power loss: see
// docs/reliability.md). An error means the document was not kept; it has
// been counted in replaylink_dropped_total.
func (p *Shipper) Publish(id, source []byte) error {
	return p.publish(spool.OpCreate, id, source)
}

// Replace spools a newer version of a document published under id, sent
// with the bulk index action so that it overwrites the original whichever
// of the two reaches Elasticsearch first: the original's create meets the
// replacement as a 409, which counts as shipped. Otherwise as Publish.
func (p *Shipper) Replace(id, source []byte) error {
	return p.publish(spool.OpReplace, id, source)
}

func (p *Shipper) publish(op spool.Op, id, source []byte) error {
	if err := p.check(id, source); err != nil {
		return err
	}
	source = oneLine(source)
	if err := p.queue.Append(op, id, source, time.Now()); err != nil {
		if errors.Is(err, spool.ErrTooLarge) {
			return p.refuse(droppedTooLarge, err)
		}
		return p.spoolError(err)
	}
	p.accepted(id, source, op == spool.OpReplace, nil)
	return nil
}

// check refuses, and counts, what no spool or index would take.
func (p *Shipper) check(id, source []byte) error {
	switch {
	case p.closed.Load():
		return p.refuse(droppedClosed, ErrClosed)
	case len(id) == 0 || len(id) > maxIDBytes:
		return p.refuse(droppedInvalid, fmt.Errorf("ship: document id of %d bytes: want 1 to %d", len(id), maxIDBytes))
	case len(source) == 0:
		return p.refuse(droppedInvalid, errors.New("ship: empty document"))
	case len(source) > maxDocumentBytes:
		return p.refuse(droppedTooLarge, fmt.Errorf("ship: document of %d bytes: at most %d", len(source), maxDocumentBytes))
	}
	return nil
}

// spoolError counts a document the spool did not take.
func (p *Shipper) spoolError(err error) error {
	if errors.Is(err, spool.ErrClosed) {
		return p.refuse(droppedClosed, ErrClosed)
	}
	return p.refuse(droppedSpoolWrite, err)
}

// accepted counts a spooled document and keeps it for lookups, with its
// keys when they are known (k nil: the store reads them from the JSON).
func (p *Shipper) accepted(id, source []byte, replace bool, k *lookupKeys) {
	queuedTotal.Inc()
	p.stats.queued.Add(1)
	if replace {
		replacedTotal.Inc()
		p.stats.replaced.Add(1)
	}
	p.store.keep(id, source, replace, k)
}

// keptDoc is a document of an enrich.Round in PublishRound's spool.Batch,
// with its source as spooled (oneLine).
type keptDoc struct {
	index  int
	source []byte
}

// PublishRound spools a round of documents with one write (group commit),
// as Publish and Replace would each. When it returns, the documents not
// refused survive a crash of replaylink; refused counts the others, each
// counted in replaylink_dropped_total, and err says why the first was.
func (p *Shipper) PublishRound(r *enrich.Round) (refused int, err error) {
	p.roundMu.Lock()
	defer p.roundMu.Unlock()
	if p.spoolBatch == nil {
		p.spoolBatch = p.queue.NewBatch()
	}
	sb := p.spoolBatch
	sb.Reset()
	p.kept = p.kept[:0]
	now := time.Now()
	fail := func(e error) {
		refused++
		if err == nil {
			err = e
		}
	}
	for i := range r.Len() {
		id, source, replace := r.Doc(i)
		if e := p.check(id, source); e != nil {
			fail(e)
			continue
		}
		op := spool.OpCreate
		if replace {
			op = spool.OpReplace
		}
		source = oneLine(source)
		if e := sb.Add(op, id, source, now); e != nil {
			fail(p.refuse(droppedTooLarge, e))
			continue
		}
		p.kept = append(p.kept, keptDoc{i, source})
	}
	n, e := p.queue.AppendBatch(sb)
	for range p.kept[n:] {
		fail(p.spoolError(e))
	}
	for _, d := range p.kept[:n] {
		id, _, replace := r.Doc(d.index)
		session, request, keyed := r.Keys(d.index)
		if !keyed {
			p.accepted(id, d.source, replace, nil)
			continue
		}
		k := lookupKeys{request: request}
		if session != 0 {
			k.session = strconv.AppendUint(p.sessionBuf[:0], session, 10)
		}
		p.accepted(id, d.source, replace, &k)
	}
	return refused, err
}

func (p *Shipper) refuse(c interface{ Inc() }, err error) error {
	c.Inc()
	p.stats.dropped.Add(1)
	return err
}

// Store returns the recent documents, for lookups (nil when MemoryDocs < 0;
// a nil store answers every lookup with nothing).
func (p *Shipper) Store() *MemoryStore { return p.store }

// Close stops taking documents and ships what the spool holds until ctx
// ends; what is left then stays in the spool for the next start, and
// Close says so in its error.
func (p *Shipper) Close(ctx context.Context) error {
	p.once.Do(func() {
		p.closed.Store(true)
		close(p.drain)
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			p.cancel()
			<-done
			p.err = fmt.Errorf("ship: time is up with documents not shipped; they stay in the spool %s for the next start: %w", p.opts.SpoolDir, ctx.Err())
		}
		p.cancel()
		if p.discovered != nil {
			<-p.discovered
		}
		if err := p.queue.Close(); err != nil && p.err == nil {
			p.err = err
		}
		if p.dead != nil {
			if err := p.dead.close(); err != nil && p.err == nil {
				p.err = err
			}
			p.transport.CloseIdleConnections()
		}
	})
	return p.err
}

// idleFlush is how long a shipment waits for more documents when the reader
// has caught up with the spool and no shipment is in flight: the workers have
// nothing better to do, so it goes without waiting for FlushInterval.
// Under load a shipment still fills for idleFlush, so bulk requests stay few
// (at most 20 a second from an idle shipper); the last partial shipment of
// a backlog, and every document at low load, reach Elasticsearch in about
// idleFlush instead of FlushInterval.
const idleFlush = 50 * time.Millisecond

// read is the reader goroutine: it streams the spool into shipments, cut at
// FlushBytes, at FlushInterval, or after idleFlush when the workers are
// idle and the spool is read to its end, and hands them to the workers.
// When they are all busy it waits, and the spool grows on disk instead of
// memory.
func (p *Shipper) read() {
	defer p.wg.Done()
	defer close(p.shipments)
	r := p.queue.Reader()
	eager := p.dest.eager()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		b        *shipment
		seq      uint64
		draining bool
		failing  bool
	)
	dispatch := func() bool {
		timer.Stop()
		b.seq = seq
		seq++
		p.inflight.Add(1)
		select {
		case p.shipments <- b:
			b = nil
			return true
		case <-p.ctx.Done():
			return false
		}
	}
	for {
		rec, ok, err := r.Next()
		if err != nil {
			if !failing {
				failing = true
				p.log.Error().Err(err).Msg("ship: cannot read the spool; retrying")
			}
			select {
			case <-time.After(p.opts.BackoffMin):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		failing = false
		if ok {
			if b == nil {
				b = newShipment()
				b.started = time.Now()
				timer.Reset(min(idleFlush, p.opts.FlushInterval))
			}
			b.add(rec.Op, rec.ID, rec.Source, rec.Created, p.opts.DataStream)
			b.end = rec.End
			if len(b.body) >= p.opts.FlushBytes || time.Since(b.started) >= p.opts.FlushInterval {
				if !dispatch() {
					return
				}
			}
			continue
		}
		// Read to the end of the spool.
		if b != nil && (eager || draining || p.inflight.Load() == 0 && time.Since(b.started) >= idleFlush) {
			if !dispatch() {
				return
			}
			continue
		}
		if draining {
			return
		}
		select {
		case <-p.queue.Notify():
		case <-p.idle:
		case <-timer.C:
			if b == nil {
				break
			}
			if age := time.Since(b.started); age < p.opts.FlushInterval && p.inflight.Load() > 0 {
				timer.Reset(p.opts.FlushInterval - age) // idleFlush passed with a shipment in flight
				break
			}
			if !dispatch() {
				return
			}
		case <-p.drain:
			draining = true
		case <-p.ctx.Done():
			return
		}
	}
}

// work is a worker goroutine: it delivers shipments and acknowledges them.
func (p *Shipper) work(d deliverer) {
	defer p.wg.Done()
	for b := range p.shipments {
		if d.deliver(p.ctx, b) == nil {
			p.acks.settle(b.seq, b.end)
		}
		b.release(p.opts.FlushBytes)
		if p.inflight.Add(-1) == 0 {
			select { // the reader may hold a shipment for an idle moment
			case p.idle <- struct{}{}:
			default:
			}
		}
	}
}

// Stats are a shipper's figures since New.
type Stats struct {
	Queued       uint64 // accepted by Publish and Replace
	Replaced     uint64 // of Queued, accepted by Replace: newer versions, not more documents
	Shipped      uint64 // indexed or written out, duplicates included
	Duplicates   uint64 // 409: already indexed by an earlier attempt
	Retried      uint64 // document sends repeated
	DeadLettered uint64
	Dropped      uint64 // refused by Publish, or refused by Elasticsearch and not kept
	Spool        spool.Stats
}

// Stats returns the shipper's figures.
func (p *Shipper) Stats() Stats {
	return Stats{
		Queued: p.stats.queued.Load(), Replaced: p.stats.replaced.Load(), Shipped: p.stats.shipped.Load(), Duplicates: p.stats.duplicates.Load(),
		Retried: p.stats.retriedN.Load(), DeadLettered: p.stats.deadLetteredN.Load(), Dropped: p.stats.dropped.Load(),
		Spool: p.queue.Stats(),
	}
}

// counters keep a shipper's Stats and feed the process-wide metrics.
type counters struct {
	queued, replaced, shipped, duplicates, retriedN, deadLetteredN, dropped atomic.Uint64
}

func (c *counters) shippedN(n, dups int) {
	c.shipped.Add(uint64(n))
	c.duplicates.Add(uint64(dups))
	shippedTotal.Add(n)
	duplicateTotal.Add(dups)
}

func (c *counters) retried(n int) {
	c.retriedN.Add(uint64(n))
	retriedTotal.Add(n)
}

func (c *counters) deadLettered(n int) {
	c.deadLetteredN.Add(uint64(n))
	deadLetteredTotal.Add(n)
}
