package ship

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/replaylink/replaylink/ship/spool"
)

// Process-wide metrics (VictoriaMetrics' default set, served by the admin
// listener). Per-shipper figures are in Stats.
var (
	queuedTotal    = metrics.GetOrCreateCounter(`replaylink_ship_documents_queued_total`)
	replacedTotal  = metrics.GetOrCreateCounter(`replaylink_ship_documents_replaced_total`) // of the queued, replacements
	shippedTotal   = metrics.GetOrCreateCounter(`replaylink_ship_documents_shipped_total`)
	duplicateTotal = metrics.GetOrCreateCounter(`replaylink_ship_documents_duplicate_total`)
	// Replacements written over their original in a data stream's backing
	// index (dataStreamOverwrite), and those the cluster refused.
	overwrittenTotal     = metrics.GetOrCreateCounter(`replaylink_ship_documents_overwritten_total`)
	overwriteFailedTotal = metrics.GetOrCreateCounter(`replaylink_ship_documents_overwrite_failed_total`)
	retriedTotal         = metrics.GetOrCreateCounter(`replaylink_ship_documents_retried_total`)
	deadLetteredTotal    = metrics.GetOrCreateCounter(`replaylink_ship_documents_dead_lettered_total`)
	bulkRequests         = metrics.GetOrCreateCounter(`replaylink_ship_bulk_requests_total`)
	bulkFailures         = metrics.GetOrCreateCounter(`replaylink_ship_bulk_request_errors_total`)
	bulkSeconds          = metrics.GetOrCreateHistogram(`replaylink_ship_bulk_request_duration_seconds`)
	indexDelaySeconds    = metrics.GetOrCreateHistogram(`replaylink_ship_index_delay_seconds`)

	droppedInvalid    = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="invalid_document"}`)
	droppedTooLarge   = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="document_too_large"}`)
	droppedSpoolWrite = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="spool_write_error"}`)
	droppedClosed     = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="shipper_closed"}`)
	droppedDeadLetter = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="dead_letter_unwritable"}`)
)

// Stats are a shipper's figures since New.
type Stats struct {
	Queued       uint64 // accepted by Publish and Replace
	Replaced     uint64 // of Queued, accepted by Replace: newer versions, not more documents
	Shipped      uint64 // indexed or written out, duplicates included
	Duplicates   uint64 // 409: already indexed by an earlier attempt
	Retried      uint64 // document sends repeated
	DeadLettered uint64
	Dropped      uint64 // refused by Publish, or refused by Elasticsearch and not kept
	Spool        spool.Stats
}

// Stats returns the shipper's figures.
func (p *Shipper) Stats() Stats {
	return Stats{
		Queued: p.stats.queued.Load(), Replaced: p.stats.replaced.Load(), Shipped: p.stats.shipped.Load(), Duplicates: p.stats.duplicates.Load(),
		Retried: p.stats.retriedN.Load(), DeadLettered: p.stats.deadLetteredN.Load(), Dropped: p.stats.dropped.Load(),
		Spool: p.queue.Stats(),
	}
}

// counters keep a shipper's Stats and feed the process-wide metrics.
type counters struct {
	queued, replaced, shipped, duplicates, retriedN, deadLetteredN, dropped atomic.Uint64
}

func (c *counters) shippedN(n, dups int) {
	c.shipped.Add(uint64(n))
	c.duplicates.Add(uint64(dups))
	shippedTotal.Add(n)
	duplicateTotal.Add(dups)
}

func (c *counters) retried(n int) {
	c.retriedN.Add(uint64(n))
	retriedTotal.Add(n)
}

func (c *counters) deadLettered(n int) {
	c.deadLetteredN.Add(uint64(n))
	deadLetteredTotal.Add(n)
}
