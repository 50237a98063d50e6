package ship

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/memstore"
	"github.com/replaylink/replaylink/ship/spool"
)

var _ enrich.RoundPublisher = (*Shipper)(nil)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("ship: closed")

const (
	maxIDBytes       = 512 // Elasticsearch's limit on _id
	maxDocumentBytes = 16 << 20
)

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
		k := memstore.Keys{Request: request}
		if session != 0 {
			k.Session = strconv.AppendUint(p.sessionBuf[:0], session, 10)
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
