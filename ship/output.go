package ship

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/backoff"
)

// outputDestination is the embedded default's writer: instead of a bulk
// request, each shipment becomes JSON lines, one per document, on an
// io.Writer (stdout or a file). A shipment is acknowledged once written; a
// failed write is retried with backoff, so a line may then appear twice.
//
// Each line starts with what a bulk request says in its action line, so a
// reader of the lines knows what Elasticsearch would hold: "_id", and
// "_replaces":true on a new version of the document of that _id (a failing
// request's access document with its traceback folded in). Both names
// begin with an underscore, which no document field of replaylink's does.
type outputDestination struct {
	w          io.Writer
	log        zerolog.Logger
	backoffMin time.Duration
	backoffMax time.Duration
	stats      *counters

	mu      sync.Mutex
	buf     []byte
	failing bool
}

// eager: lines go out as soon as the reader catches up, not on a timer.
func (o *outputDestination) eager() bool { return true }

func (o *outputDestination) deliverer() deliverer { return o }

func (o *outputDestination) deliver(ctx context.Context, b *shipment) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = o.buf[:0]
	for i := range b.docs {
		o.buf = appendOutputLine(o.buf, b, &b.docs[i])
	}
	for attempt := 0; ; attempt++ {
		// One Write per shipment: lines never interleave with other writers'.
		_, err := o.w.Write(o.buf)
		if err == nil {
			break
		}
		if !o.failing {
			o.failing = true
			o.log.Error().Err(err).Msg("ship: cannot write documents to the output; they wait in the spool")
		}
		o.stats.retried(len(b.docs))
		if err := backoff.Sleep(ctx, attempt, o.backoffMin, o.backoffMax); err != nil {
			return err
		}
	}
	if o.failing {
		o.failing = false
		o.log.Info().Msg("ship: writing documents to the output again")
	}
	now := time.Now()
	for i := range b.docs {
		indexDelaySeconds.Update(now.Sub(time.Unix(0, b.docs[i].created)).Seconds())
	}
	o.stats.shippedN(len(b.docs), 0)
	return nil
}

// appendOutputLine appends d as one output line: its source with "_id" (and
// "_replaces") put in front of its members.
func appendOutputLine(dst []byte, b *shipment, d *docSpan) []byte {
	src := b.body[d.src:d.end]
	if len(src) < 2 || src[0] != '{' {
		return append(dst, src...) // not an object (enrich makes none): as it is
	}
	dst = append(dst, `{"_id":"`...)
	dst = append(dst, d.escapedID(b)...)
	dst = append(dst, '"')
	if d.replace {
		dst = append(dst, `,"_replaces":true`...)
	}
	if rest := bytes.TrimLeft(src[1:], " \t"); len(rest) > 0 && rest[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, src[1:]...)
}
