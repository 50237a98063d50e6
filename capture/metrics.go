package capture

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/replaylink/replaylink/capture/hooks"
)

// Counters of the global VictoriaMetrics set, served by the admin listener.
var (
	// Lines handed to the Sink, and among them those cut at the limit.
	linesTotal     = perStream(`replaylink_capture_lines_total`)
	truncatedTotal = perStream(`replaylink_capture_truncated_total`)

	// Bytes the child wrote that could not be passed through to replaylink's
	// own stdout/stderr (the lines were still captured).
	passthroughFailed = [...]*metrics.Counter{
		Stdout: metrics.GetOrCreateCounter(`replaylink_capture_passthrough_failed_bytes_total{stream="stdout"}`),
		Stderr: metrics.GetOrCreateCounter(`replaylink_capture_passthrough_failed_bytes_total{stream="stderr"}`),
	}
	childRestarts = metrics.GetOrCreateCounter(`replaylink_capture_child_restarts_total`)

	tailRotations   = metrics.GetOrCreateCounter(`replaylink_capture_tail_rotations_total`)
	tailTruncations = metrics.GetOrCreateCounter(`replaylink_capture_tail_truncations_total`)
	tailOpenErrors  = metrics.GetOrCreateCounter(`replaylink_capture_tail_errors_total{reason="open"}`)
	tailReadErrors  = metrics.GetOrCreateCounter(`replaylink_capture_tail_errors_total{reason="read"}`)
	tailStateErrors = metrics.GetOrCreateCounter(`replaylink_capture_tail_errors_total{reason="state_save"}`)

	// Ingest requests refused; their lines were not read so cannot be counted
	// (except the ones accepted before a limit was hit, in lines_total).
	ingestRejected = map[string]*metrics.Counter{}
)

func init() {
	for _, reason := range []string{reasonMethod, reasonContentType, reasonContentEncoding, reasonTooLarge, reasonBadBody} {
		ingestRejected[reason] = metrics.GetOrCreateCounter(`replaylink_capture_ingest_rejected_total{reason="` + reason + `"}`)
	}
}

func perStream(name string) [len(streamNames)]*metrics.Counter {
	var cs [len(streamNames)]*metrics.Counter
	for s := Stdout; int(s) < len(streamNames); s++ {
		cs[s] = metrics.GetOrCreateCounter(name + `{stream="` + s.String() + `"}`)
	}
	return cs
}

// deliver takes the hook marks with nonce off l (setting l.Hook; none
// when nonce is zero), counts it, and hands it to sink.
func deliver(sink Sink, l *Line, nonce hooks.Nonce) {
	l.Hook = hooks.Mark{}
	if !nonce.IsZero() {
		l.Text, l.Hook = hooks.Strip(l.Text, nonce)
	}
	countLine(l)
	sink.Line(l)
}

// countLine records a line handed to the Sink.
func countLine(l *Line) {
	linesTotal[l.Stream].Inc()
	if l.Truncated {
		truncatedTotal[l.Stream].Inc()
	}
}
