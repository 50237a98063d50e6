package ship

// Why our own bulk loop and not esutil.BulkIndexer: the spool acknowledges
// whole shipments in order, so a shipment must stay together until every
// one of its documents is settled; BulkIndexer reports per item through
// callbacks, regroups documents on its own, cannot split a request on 413,
// and retries through the client (which buffers each body once more). It
// also costs more: BenchmarkBulkLoop/gzip against BenchmarkBulkIndexer
// (bench_test.go: same documents, gzip on for both, one worker, a canned
// node in the same process) measured about 1.5 us and no allocation per document for this
// loop, against 7 to 8 us and 10 allocations (4.5 KB) for BulkIndexer.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/internal/backoff"
	"github.com/replaylink/replaylink/internal/choice"
)

// maxResponseBytes bounds what is read of a bulk response: with
// bulkFilterPath it is a few dozen bytes per document.
const maxResponseBytes = 64 << 20

// bulkDestination sends shipments to Elasticsearch with the bulk API.
type bulkDestination struct {
	client      *elasticsearch.Client
	target      string // index, alias or data stream written to
	log         zerolog.Logger
	deadLetters *deadLetters
	backoffMin  time.Duration
	backoffMax  time.Duration
	itemRetry   time.Duration
	stats       *counters
	gzip        bool // compress request bodies (Options.Compression)

	setup     func(context.Context) error // nil: nothing to set up
	setupMu   sync.Mutex
	setupDone bool

	trouble atomic.Bool // an outage or push-back is under way (logged once)
}

func (s *bulkDestination) eager() bool { return false }

func (s *bulkDestination) deliverer() deliverer {
	w := &bulkWorker{s: s}
	if s.gzip {
		w.gz, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	}
	return w
}

// bulkWorker is one worker's sender, with its own scratch buffers.
type bulkWorker struct {
	s       *bulkDestination
	gz      *gzip.Writer // nil: bodies go as they are
	zbuf    bytes.Buffer
	resp    bytes.Buffer
	sub     []byte
	all     []int
	results []ItemResult
	rejects []deadLetter
	// overwrites are the replacements into a data stream whose create met
	// their original (dataStreamOverwrite), from the last settle.
	overwrites []int
}

// deliver returns once every document of b is indexed, a duplicate, or in
// the dead-letter file; or with ctx's error when ctx ends first.
func (w *bulkWorker) deliver(ctx context.Context, b *shipment) error {
	if err := w.s.ensureSetup(ctx); err != nil {
		return err
	}
	w.all = w.all[:0]
	for i := range b.docs {
		if b.docs[i].viaCreate {
			done, err := w.replaceInPlace(ctx, b, i)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		w.all = append(w.all, i)
	}
	if len(w.all) == 0 {
		return nil
	}
	pending := [][]int{w.all} // a stack of groups of documents to send
	attempt := 0
	for len(pending) > 0 {
		g := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		body := b.body
		if len(g) != len(b.docs) {
			w.sub = w.sub[:0]
			for _, i := range g {
				w.sub = append(w.sub, b.body[b.docs[i].start:b.docs[i].end]...)
			}
			body = w.sub
		}
		status, resp, err := w.send(ctx, body)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.s.troubleStarted("Elasticsearch is unreachable; documents wait in the spool", err)
			pending = append(pending, g)
			w.s.stats.retried(len(g))
			if err := backoff.Sleep(ctx, attempt, w.s.backoffMin, w.s.backoffMax); err != nil {
				return err
			}
			attempt++
			continue
		}
		retry, split, progressed := w.settle(b, g, status, resp)
		if again, err := w.overwrite(ctx, b); err != nil {
			return err
		} else if len(again) > 0 {
			retry = append(retry, again...)
		}
		if split {
			pending = append(pending, g[len(g)/2:], g[:len(g)/2])
		}
		if progressed {
			attempt = 0
		}
		if len(retry) > 0 {
			pending = append(pending, retry)
			w.s.stats.retried(len(retry))
			if err := backoff.Sleep(ctx, attempt, w.s.backoffMin, w.s.backoffMax); err != nil {
				return err
			}
			attempt++
		}
	}
	return nil
}

// settle applies the verdicts of one bulk response to the documents g of b:
// it counts what went in, dead-letters what was refused, and returns what
// to retry and whether to split g in halves.
func (w *bulkWorker) settle(b *shipment, g []int, status int, resp []byte) (retry []int, split, progressed bool) {
	w.results = ClassifyBulk(status, resp, len(g), w.results)
	w.rejects = w.rejects[:0]
	w.overwrites = w.overwrites[:0]
	now := time.Now()
	var first *ItemResult
	failed, shipped, dups := 0, 0, 0
	for i, r := range w.results {
		d := &b.docs[g[i]]
		switch r.Verdict {
		case Indexed:
			shipped++
			indexDelaySeconds.Update(now.Sub(time.Unix(0, d.created)).Seconds())
		case Duplicate:
			shipped++
			dups++
			if d.viaCreate {
				w.overwrites = append(w.overwrites, g[i])
			}
		case Split:
			split = true
			if len(g) == 1 {
				w.rejects = append(w.rejects, deadLetter{doc: d, status: r.Status, err: syntheticError("document_too_large",
					"Elasticsearch refused the document alone as too large (413): raise http.max_content_length, or lower --max-line-bytes")})
				split = false
			}
		case Backoff:
			retry = append(retry, g[i])
		case Retry:
			if d.failingSince == 0 {
				d.failingSince = now.UnixNano()
			}
			if now.Sub(time.Unix(0, d.failingSince)) >= w.s.itemRetry {
				w.rejects = append(w.rejects, deadLetter{doc: d, status: r.Status, err: r.Error})
			} else {
				retry = append(retry, g[i])
			}
		case Reject:
			w.rejects = append(w.rejects, deadLetter{doc: d, status: r.Status, err: r.Error})
		}
		if r.Verdict != Indexed && r.Verdict != Duplicate && r.Verdict != Split {
			failed++
			if first == nil {
				first = &w.results[i]
			}
		}
	}
	w.s.stats.shippedN(shipped, dups)
	progressed = shipped > 0 || len(w.rejects) > 0
	if len(w.rejects) > 0 {
		w.s.deadLetter(b, w.rejects, failed, len(g))
	} else if first != nil {
		w.s.troubleStarted("Elasticsearch pushes back or refuses; retrying with backoff",
			fmt.Errorf("%d of %d documents: status %d: %s", failed, len(g), first.Status, first.Error))
	} else {
		w.s.troubleEnded()
	}
	return retry, split, progressed
}

// replaceInPlace writes replacement i of b over its original when the
// original is already in a backing index of the data stream, which a create
// would not see when a rollover has made that index old (a create is
// unique per backing index only). done: it is settled; otherwise it goes
// in the bulk request as a create (its original is not there yet, or could
// not be looked up: a 409 then brings it to overwrite).
func (w *bulkWorker) replaceInPlace(ctx context.Context, b *shipment, i int) (done bool, err error) {
	d := &b.docs[i]
	id, ok := rawID(b, d)
	if !ok {
		return false, nil
	}
	err = dataStreamOverwrite(ctx, w.s.client, w.s.target, []byte(id), d.source(b))
	switch {
	case err == nil:
		overwrittenTotal.Inc()
		w.s.stats.shippedN(1, 0)
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return false, nil
}

// rawID is d's _id as it was published (the shipment holds it escaped).
func rawID(b *shipment, d *docSpan) (string, bool) {
	var id string
	err := json.Unmarshal(append(append([]byte{'"'}, d.escapedID(b)...), '"'), &id)
	return id, err == nil
}

// overwrite writes the replacements of the last settle over their
// originals in the data stream's backing indices, and returns those to send
// again: after a passing failure their create meets the original once more
// and they come back here. One the cluster refuses for good (no privilege
// to write to the backing index, say) keeps its original, as before
// replacements into data streams were possible, and says so.
func (w *bulkWorker) overwrite(ctx context.Context, b *shipment) (again []int, err error) {
	for _, i := range w.overwrites {
		d := &b.docs[i]
		id, ok := rawID(b, d)
		if !ok {
			continue // cannot happen: the shipment escaped it
		}
		err := dataStreamOverwrite(ctx, w.s.client, w.s.target, []byte(id), d.source(b))
		var re *esclient.ResponseError
		switch {
		case err == nil:
			overwrittenTotal.Inc()
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errOriginalGone):
			w.s.log.Debug().Str("id", id).Msg("ship: the original of a replacement is gone from the data stream; nothing to replace")
		case errors.As(err, &re) && !retryable(err):
			overwriteFailedTotal.Inc()
			w.s.log.Warn().Err(err).Str("id", id).Str("fix", "give replaylink's credentials the index privilege on the data stream's backing indices").
				Msg("ship: could not replace a document in the data stream; the original stays")
		default:
			again = append(again, i)
		}
	}
	return again, nil
}

// send posts one bulk body, gzipped unless compression is off, and returns
// the status and the response.
func (w *bulkWorker) send(ctx context.Context, body []byte) (int, []byte, error) {
	// A fresh header each time: the client adds to it.
	header := http.Header{"Content-Type": {"application/x-ndjson"}}
	if w.gz != nil {
		w.zbuf.Reset()
		w.gz.Reset(&w.zbuf)
		w.gz.Write(body) // writes to a bytes.Buffer cannot fail
		w.gz.Close()
		body = w.zbuf.Bytes()
		header["Content-Encoding"] = []string{"gzip"}
	}

	start := time.Now()
	bulkRequests.Inc()
	res, err := esapi.BulkRequest{
		Index:      w.s.target,
		Body:       bytes.NewReader(body),
		FilterPath: bulkFilterPath,
		Header:     header,
	}.Do(ctx, w.s.client)
	if err != nil {
		bulkFailures.Inc()
		return 0, nil, err
	}
	defer res.Body.Close()
	w.resp.Reset()
	_, err = w.resp.ReadFrom(io.LimitReader(res.Body, maxResponseBytes))
	bulkSeconds.UpdateDuration(start)
	if err != nil {
		bulkFailures.Inc()
		return 0, nil, fmt.Errorf("read bulk response: %w", err)
	}
	return res.StatusCode, w.resp.Bytes(), nil
}

// Compression says whether bulk request bodies are gzipped
// (--es-compression). Its zero value is CompressionAuto.
type Compression uint8

const (
	// CompressionAuto gzips unless every URL's host is a loopback address
	// (127.0.0.0/8, ::1, localhost): with the node on the same machine,
	// compressing saves no network and is about 40% of the shipper's CPU.
	CompressionAuto Compression = iota
	CompressionGzip             // gzip at its fastest level
	CompressionNone
)

var compressionNames = []string{"auto", "gzip", "none"}

func (c Compression) String() string { return choice.Name(c, compressionNames) }

// UnmarshalText takes auto, gzip or none.
func (c *Compression) UnmarshalText(b []byte) error { return choice.Parse(c, b, compressionNames) }

// gzipFor tells whether bodies sent to urls are gzipped.
func (c Compression) gzipFor(urls []string) bool {
	switch c {
	case CompressionGzip:
		return true
	case CompressionNone:
		return false
	}
	for _, raw := range urls {
		if !loopbackURL(raw) {
			return true
		}
	}
	return false
}

func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deadLetter writes refused documents to the dead-letter file, and logs the
// first refusal of the response only, so that a bad shipment cannot flood.
func (s *bulkDestination) deadLetter(b *shipment, rejects []deadLetter, failed, sent int) {
	first := rejects[0]
	kept, err := s.deadLetters.write(b, rejects)
	s.stats.deadLettered(kept)
	lost := len(rejects) - kept
	if lost > 0 {
		droppedDeadLetter.Add(lost)
		s.stats.dropped.Add(uint64(lost))
	}
	ev := s.log.Warn()
	if err != nil || lost > 0 {
		ev = s.log.Error().Err(err).Int("not_kept", lost)
	}
	ev.Int("refused", len(rejects)).Int("failed", failed).Int("sent", sent).
		Int("status", first.status).RawJSON("first_error", validJSON(first.err)).
		Str("file", s.deadLetters.path).
		Msg("ship: Elasticsearch refused documents for good; they are in the dead-letter file")
}

// validJSON returns b when it is a JSON object, for a log's RawJSON field.
func validJSON(b []byte) []byte {
	if len(b) > 0 && b[0] == '{' && json.Valid(b) {
		return b
	}
	return []byte("null")
}

// troubleStarted logs the start of an outage or a push-back streak once.
func (s *bulkDestination) troubleStarted(msg string, err error) {
	if s.trouble.CompareAndSwap(false, true) {
		s.log.Warn().Err(err).Msg("ship: " + msg)
	} else {
		s.log.Debug().Err(err).Msg("ship: " + msg)
	}
}

func (s *bulkDestination) troubleEnded() {
	if s.trouble.CompareAndSwap(true, false) {
		s.log.Info().Msg("ship: Elasticsearch accepts documents again")
	}
}

// ensureSetup runs the set-up (index template, write target) once, before
// the first bulk request. While the cluster is unreachable it retries; when
// the cluster refuses (no privilege, say) it logs why and ships anyway.
func (s *bulkDestination) ensureSetup(ctx context.Context) error {
	if s.setup == nil {
		return nil
	}
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	for attempt := 0; !s.setupDone; attempt++ {
		err := s.setup(ctx)
		switch {
		case err == nil:
			s.setupDone = true
		case ctx.Err() != nil:
			return ctx.Err()
		case !retryable(err):
			s.log.Warn().Err(err).Msg("ship: could not set up the index template; shipping without it (run 'replaylink setup' with a privileged key, or pass --es-setup=false)")
			s.setupDone = true
		default:
			s.troubleStarted("Elasticsearch is unreachable; documents wait in the spool", err)
			if err := backoff.Sleep(ctx, attempt, s.backoffMin, s.backoffMax); err != nil {
				return err
			}
		}
	}
	return nil
}

// retryable tells a passing failure (no connection, push-back, node
// trouble) from a refusal that retrying cannot fix.
func retryable(err error) bool {
	var re *esclient.ResponseError
	if errors.As(err, &re) {
		return re.Status == http.StatusTooManyRequests || re.Status >= 500
	}
	return true
}
