package enrich

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// TestSessionlessPolicy feeds the same traffic under each --sessionless
// policy: requests with and without a session at each level, backend lines
// of no request, and a failing sessionless request with its traceback.
// Documents of a session are always kept; of the others, "all" keeps every
// one, "errors" those at level error, "none" nothing; each one not kept is
// counted.
func TestSessionlessPolicy(t *testing.T) {
	want := map[string][]string{
		"all": {"s200", "s500", "GET /ok", "GET /missing", "GET /boom", "INFO:app:idle",
			"ERROR:app:disk full", "GET /fail", "ERROR:app:Exception", "INFO:app:next record"},
		"errors": {"s200", "s500", "GET /boom", "ERROR:app:disk full", "GET /fail", "ERROR:app:Exception"},
		"none":   {"s200", "s500"},
	}
	for _, policy := range []string{"all", "errors", "none"} {
		t.Run(policy, func(t *testing.T) {
			pub := &recorder{}
			opts := testOptions()
			if err := opts.Sessionless.UnmarshalText([]byte(policy)); err != nil {
				t.Fatal(err)
			}
			opts.IgnoreMarkers = true
			a := newTestAssembler(pub, opts)
			skipped0 := sessionlessSkipped.Get()
			at := t0
			step := func() time.Time { at = at.Add(time.Second); return at }
			a.addEvent(accessEvent(1, 42, step(), time.Millisecond, "GET", "/s200", 200), at)
			a.addEvent(accessEvent(2, 42, step(), time.Millisecond, "GET", "/s500", 500), at)
			a.addEvent(accessEvent(3, 0, step(), time.Millisecond, "GET", "/ok", 200), at)
			a.addEvent(accessEvent(4, 0, step(), time.Millisecond, "GET", "/missing", 404), at)
			a.addEvent(accessEvent(5, 0, step(), time.Millisecond, "GET", "/boom", 503), at)
			a.addLine(lineAt(step(), capture.Stderr, "INFO:app:idle"), at)
			a.tick(step())
			a.addLine(lineAt(step(), capture.Stderr, "ERROR:app:disk full"), at)
			a.tick(step())
			// A sessionless request fails and the backend prints its
			// traceback: lines of a request without a session belong to no
			// session, so the traceback is a document of its own.
			start := step()
			a.attr.RequestStarted(&proxy.RequestStart{Seq: 6, Start: start})
			fail := accessEvent(6, 0, start, 5*time.Millisecond, "GET", "/fail", 500)
			a.attr.finish(fail) // as the enricher does on the request's goroutine
			a.addEvent(fail, start.Add(6*time.Millisecond))
			now := start.Add(6 * time.Millisecond)
			for _, l := range flaskFailure {
				a.addLine(lineAt(start.Add(4*time.Millisecond), capture.Stderr, l), now) // printed while it ran
			}
			a.addLine(lineAt(now, capture.Stderr, "INFO:app:next record"), now) // completes the traceback
			a.tick(step())
			a.flushAll()

			var got []string
			for _, d := range pub.decoded(t) {
				msg := fmt.Sprint(d["message"])
				if s, ok := field(d, "openReplaySession.id").(string); ok && s != "" {
					got = append(got, "s"+fmt.Sprint(field(d, "http.response.status_code")))
					continue
				}
				for _, w := range want["all"] {
					if strings.Contains(msg, w) {
						got = append(got, w)
						break
					}
				}
			}
			if !slices.Equal(got, want[policy]) {
				t.Errorf("--sessionless %s kept %q, want %q", policy, got, want[policy])
			}
			if skipped, w := int(sessionlessSkipped.Get()-skipped0), len(want["all"])-len(want[policy]); skipped != w {
				t.Errorf("--sessionless %s: %d counted as skipped, want %d", policy, skipped, w)
			}
		})
	}
}
