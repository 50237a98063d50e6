// Package backoff is the one retry wait of replaylink: doubling from a
// least to a most wait, jittered in its upper half. The shipper waits it
// between bulk attempts and node discoveries, and the Elasticsearch client's
// node pool leaves a failing node alone for it; both use this package so the
// two waits cannot drift apart.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry number attempt (0-based): it doubles from
// lo up to hi, and jitter in [0,1) picks a point in its upper half, so that
// workers and replicas recovering from the same outage spread out.
func Delay(attempt int, lo, hi time.Duration, jitter float64) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// Sleep waits before retry number attempt, or until ctx ends.
func Sleep(ctx context.Context, attempt int, lo, hi time.Duration) error {
	t := time.NewTimer(Delay(attempt, lo, hi, rand.Float64()))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
