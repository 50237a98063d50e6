package ship

import "github.com/VictoriaMetrics/metrics"

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
