package enrich

import "github.com/VictoriaMetrics/metrics"

// Counters in the global set. Session ids are never labels.
var (
	droppedEventQueueFull = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="event_queue_full"}`)
	droppedLineQueueFull  = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="line_queue_full"}`)
	droppedClosed         = metrics.GetOrCreateCounter(`replaylink_dropped_total{reason="enrich_closed"}`)
	// Documents of no session that --sessionless does not keep: a choice,
	// not a loss, so not in replaylink_dropped_total.
	sessionlessSkipped = metrics.GetOrCreateCounter(`replaylink_enrich_sessionless_skipped_total`)

	documentsAccess  = metrics.GetOrCreateCounter(`replaylink_enrich_documents_total{dataset="replaylink.access"}`)
	documentsBackend = metrics.GetOrCreateCounter(`replaylink_enrich_documents_total{dataset="replaylink.backend"}`)
	publishErrors    = metrics.GetOrCreateCounter(`replaylink_enrich_publish_errors_total`)

	attributed = [...]*metrics.Counter{
		attributionNone:   metrics.GetOrCreateCounter(`replaylink_enrich_attribution_total{level="none"}`),
		attributionWindow: metrics.GetOrCreateCounter(`replaylink_enrich_attribution_total{level="window"}`),
		attributionExact:  metrics.GetOrCreateCounter(`replaylink_enrich_attribution_total{level="exact"}`),
	}
	// attributedBySource counts backend records by what attributed them:
	// how much of a backend's output reaches its session, and how.
	attributedBySource = map[string]*metrics.Counter{
		"hook":       metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="hook"}`),
		"request-id": metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="request-id"}`),
		"trace-id":   metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="trace-id"}`),
		"marker":     metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="marker"}`),
		"window":     metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="window"}`),
		"":           metrics.GetOrCreateCounter(`replaylink_enrich_attributed_by_total{by="none"}`),
	}
	// mergedErrors counts backend error records folded into their
	// request's 5xx access document.
	mergedErrors = metrics.GetOrCreateCounter(`replaylink_enrich_merged_errors_total`)
	// replacements counts documents handed on again under the _id of one
	// published before: a 5xx access document, or a backend error, that
	// became the merged error document of its request.
	replacements = metrics.GetOrCreateCounter(`replaylink_enrich_replacements_total`)
	// truncatedFieldsTotal counts access document fields cut at their cap,
	// by field (truncatedFieldNames).
	truncatedFieldsTotal = func() (cs [len(truncatedFieldNames)]*metrics.Counter) {
		for i, name := range truncatedFieldNames {
			cs[i] = metrics.GetOrCreateCounter(`replaylink_enrich_truncated_fields_total{field="` + name + `"}`)
		}
		return cs
	}()
)

// attributedBy is the counter of records attributed by source ("": none).
func attributedBy(source string) *metrics.Counter { return attributedBySource[source] }
