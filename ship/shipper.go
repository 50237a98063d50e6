// Package ship takes finished documents from enrich and gets them into
// Elasticsearch (or, in the embedded default, onto an output as JSON lines)
// exactly once as far as anyone searching can tell: at least once through
// the disk spool (package spool), and without duplicates because every
// document has a deterministic _id and is sent with the create action (a
// Replace with the index action, which overwrites; into a data stream, which
// takes creates only, with a conditional write on the backing index that
// holds the original: datastream.go). With several nodes, requests are
// spread over them by the Elasticsearch client (package esclient).
//
// Shipper is the whole of it: go doc ship.Shipper tells how its goroutines
// hand documents on.
package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/internal/backoff"
	"github.com/replaylink/replaylink/memstore"
	"github.com/replaylink/replaylink/ship/spool"
)

// Shipper gets enrich's documents into Elasticsearch (or onto the output)
// through the disk spool; it implements enrich.RoundPublisher.
//
// Data flows Publish -> spool (disk) -> one reader goroutine that cuts
// shipments -> Workers goroutines that send them -> in-order
// acknowledgements back to the spool. Publish never waits for
// Elasticsearch. The files follow the data:
//
//   - publish.go: Publish, Replace and PublishRound run on the caller's
//     goroutine (enrich's worker). They check a document, append it to the
//     spool (a round with one write), count it and keep it for lookups, and
//     return once it would survive a crash of replaylink.
//   - reader.go: the one reader goroutine streams the spool from disk and
//     cuts shipments (shipment.go: spool records already encoded as a bulk
//     body) at FlushBytes, at FlushInterval, or after idleFlush when nothing
//     is in flight. It hands each to the workers over an unbuffered channel,
//     so when they are all busy it waits and the spool, not memory, grows.
//   - worker.go: Workers goroutines each deliver shipments to the
//     destination (bulk.go: Elasticsearch's bulk API, with retries and dead
//     letters; output.go: JSON lines, the embedded default) and settle them;
//     the ackTracker (acks.go) acknowledges the spool in order, so its saved
//     position never passes a document still unsettled.
//   - options.go: what New takes and refuses; metrics.go: Stats and the
//     process-wide metrics.
//
// Close stops Publish, lets the reader ship what the spool holds and the
// workers finish, and leaves the rest in the spool for the next start.
type Shipper struct {
	opts  Options
	log   zerolog.Logger
	queue *spool.Queue
	store *memstore.Store
	dest  destination
	dead  *deadLetters
	// es is the Elasticsearch client (nil in the embedded default), whose
	// idle connections Close closes; with Client.Discover, discover keeps
	// its nodes up to date until discovered is closed.
	es         *esclient.Client
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
	if opts.MemoryStore > 0 {
		p.store = memstore.New(opts.MemoryStore, opts.MemoryBytes)
	}
	discover := false // the client's nodes are to be discovered
	if embedded {
		p.dest = &outputDestination{w: opts.Output, log: p.log, backoffMin: opts.BackoffMin, backoffMax: opts.BackoffMax, stats: &p.stats}
	} else {
		gzip := opts.Compression.gzipFor(opts.Client.URLs)
		c, err := esclient.New(opts.Client)
		if err != nil {
			return nil, err
		}
		p.es = c
		client := c.Client
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
		discover = opts.Client.Discover
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
		ev.Strs("es", esclient.RedactedURLs(opts.Client.URLs)).Str("target", target.WriteName()).Msg("ship: shipping to Elasticsearch")
	}

	if discover {
		p.discovered = make(chan struct{})
		go p.discover()
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
func (p *Shipper) discover() {
	defer close(p.discovered)
	learnt := false
	for attempt := 0; ; {
		err := p.es.Discover(p.ctx)
		if p.ctx.Err() != nil {
			return
		}
		wait := p.opts.Client.DiscoverInterval
		if err != nil {
			p.log.Warn().Err(err).Strs("nodes", p.es.Nodes()).Msg("ship: could not discover the cluster's nodes; using those known")
			if !learnt {
				wait = backoff.Delay(attempt, p.opts.BackoffMin, p.opts.BackoffMax, rand.Float64())
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

// accepted counts a spooled document and keeps it for lookups, with its
// keys when they are known (k nil: the store reads them from the JSON).
func (p *Shipper) accepted(id, source []byte, replace bool, k *memstore.Keys) {
	queuedTotal.Inc()
	p.stats.queued.Add(1)
	if replace {
		replacedTotal.Inc()
		p.stats.replaced.Add(1)
	}
	p.store.Keep(id, source, replace, k)
}

// MemoryStore returns the memory store of recent documents, for lookups
// (nil when Options.MemoryStore is 0; a nil store answers every lookup with
// nothing).
func (p *Shipper) MemoryStore() *memstore.Store { return p.store }

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
			p.es.CloseIdleConnections()
		}
	})
	return p.err
}
