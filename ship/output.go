package ship

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// outputSink is the embedded default's writer: instead of a bulk request,
// each batch becomes JSON lines, one per document, on an io.Writer (stdout
// or a file). A batch is acknowledged once written; a failed write is
// retried with backoff, so a line may then appear twice.
type outputSink struct {
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
func (o *outputSink) eager() bool { return true }

func (o *outputSink) deliverer() deliverer { return o }

func (o *outputSink) deliver(ctx context.Context, b *batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = o.buf[:0]
	for i := range b.docs {
		o.buf = append(o.buf, b.body[b.docs[i].src:b.docs[i].end]...)
	}
	for attempt := 0; ; attempt++ {
		// One Write per batch: lines never interleave with other writers'.
		_, err := o.w.Write(o.buf)
		if err == nil {
			break
		}
		if !o.failing {
			o.failing = true
			o.log.Error().Err(err).Msg("ship: cannot write documents to the output; they wait in the spool")
		}
		o.stats.retried(len(b.docs))
		if err := sleepBackoff(ctx, attempt, o.backoffMin, o.backoffMax); err != nil {
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
