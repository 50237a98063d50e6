package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		attempt  int
		jitter   float64
		min, max time.Duration
	}{
		{0, 0, 50 * time.Millisecond, 50 * time.Millisecond},
		{0, 0.999, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{3, 0.5, 600 * time.Millisecond, 600 * time.Millisecond},
		{6, 0, 2500 * time.Millisecond, 2500 * time.Millisecond}, // capped: 6.4s -> 5s
		{1000, 0.999, 2500 * time.Millisecond, hi},               // no overflow
	} {
		got := Delay(tc.attempt, lo, hi, tc.jitter)
		if got < tc.min || got > tc.max {
			t.Errorf("attempt %d jitter %v: %v, want within [%v, %v]", tc.attempt, tc.jitter, got, tc.min, tc.max)
		}
	}
}
