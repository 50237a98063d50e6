package spool

import "github.com/VictoriaMetrics/metrics"

var (
	droppedFull  = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="spool_full"}`)
	corruptTotal = metrics.GetOrCreateCounter(`replaylink_spool_corrupt_total`)
	corruptBytes = metrics.GetOrCreateCounter(`replaylink_spool_corrupt_bytes_total`)
	spoolErrors  = metrics.GetOrCreateCounter(`replaylink_spool_errors_total`)
	spoolBytes   = metrics.GetOrCreateGauge(`replaylink_spool_bytes`, nil)
	spoolSegs    = metrics.GetOrCreateGauge(`replaylink_spool_segments`, nil)
)

func updateGauges(bytes int64, segments int) {
	spoolBytes.Set(float64(bytes))
	spoolSegs.Set(float64(segments))
}
