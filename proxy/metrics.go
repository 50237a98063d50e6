package proxy

import (
	"github.com/VictoriaMetrics/metrics"
)

// Metrics live in the global set and are created once, so the hot path only
// increments pre-resolved counters.
var (
	requestsByClass = [6]*metrics.Counter{
		metrics.NewCounter(`replaylink_requests_total{class="other"}`),
		metrics.NewCounter(`replaylink_requests_total{class="1xx"}`),
		metrics.NewCounter(`replaylink_requests_total{class="2xx"}`),
		metrics.NewCounter(`replaylink_requests_total{class="3xx"}`),
		metrics.NewCounter(`replaylink_requests_total{class="4xx"}`),
		metrics.NewCounter(`replaylink_requests_total{class="5xx"}`),
	}
	clientAborted    = metrics.NewCounter(`replaylink_client_aborted_total`)
	upstreamRetries  = metrics.NewCounter(`replaylink_upstream_retries_total`)
	requestsInFlight = metrics.NewGauge(`replaylink_requests_in_flight`, nil)
	requestDuration  = metrics.NewPrometheusHistogram(`replaylink_request_duration_seconds`)

	upstreamErrors = func() (c [numErrorKinds]*metrics.Counter) {
		for k := KindRefused; k < numErrorKinds; k++ {
			c[k] = metrics.NewCounter(`replaylink_upstream_errors_total{kind="` + k.String() + `"}`)
		}
		return c
	}()

	invalidSession = func() (c [numConfigSources]*metrics.Counter) {
		for i, name := range configSourceNames {
			c[i] = metrics.NewCounter(`replaylink_invalid_session_total{source="` + name + `"}`)
		}
		return c
	}()

	rejectedConns = func() (c [numConnRejectReasons]*metrics.Counter) {
		for r := range numConnRejectReasons {
			c[r] = metrics.NewCounter(`replaylink_rejected_connections_total{reason="` + connRejectReasonNames[r] + `"}`)
		}
		return c
	}()

	reuseRefused = func() (c [numReuseRefusals]*metrics.Counter) {
		for r := refuseClosed; r < numReuseRefusals; r++ {
			c[r] = metrics.NewCounter(`replaylink_upstream_reuse_refused_total{reason="` + reuseRefusalNames[r] + `"}`)
		}
		return c
	}()

	rejectedRequests = func() (c [numRejectReasons]*metrics.Counter) {
		for r := rejectFraming; r < numRejectReasons; r++ {
			c[r] = metrics.NewCounter(`replaylink_rejected_requests_total{reason="` + rejectReasonNames[r] + `"}`)
		}
		return c
	}()
)

// rejectReason says why the proxy answered a request 4xx itself.
type rejectReason uint8

const (
	rejectFraming        rejectReason = iota // ambiguous framing: CL+TE, folding, bad chunk
	rejectHeaderTooLarge                     // request line plus headers over MaxHeaderBytes
	rejectMalformed                          // fasthttp could not parse the request
	rejectTimeout                            // the client was too slow sending its request
	rejectBodyTimeout                        // the body did not arrive within ClientBodyTimeout
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{"framing", "header_too_large", "malformed", "timeout", "body_timeout"}

// connRejectReason says why the proxy refused a client connection.
type connRejectReason uint8

const (
	rejectPerClientLimit connRejectReason = iota // the address had MaxConnsPerClient open
	numConnRejectReasons
)

var connRejectReasonNames = [numConnRejectReasons]string{"per_client_limit"}

func countRequest(status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	requestsByClass[class].Inc()
}

// upstreamHealthGauge is 1 while the upstream is usable and 0 while it is
// in cool-down.
func upstreamHealthGauge(addr string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(`replaylink_upstream_healthy{upstream="`+addr+`"}`, nil)
}
