package ship

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoffDelay is the wait before retry number attempt (0-based): it doubles
// from lo up to hi, and jitter in [0,1) picks a point in its upper half, so
// that workers and replicas recovering from the same outage spread out.
func backoffDelay(attempt int, lo, hi time.Duration, jitter float64) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// sleepBackoff waits before retry number attempt, or until ctx ends.
func sleepBackoff(ctx context.Context, attempt int, lo, hi time.Duration) error {
	t := time.NewTimer(backoffDelay(attempt, lo, hi, rand.Float64()))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
