package enrich

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Options configure a Pipeline. Zero values take the defaults below.
type Options struct {
	// ServiceName is service.name of every document; empty leaves it out.
	ServiceName string
	// HostName is host.name of every document; empty means os.Hostname.
	HostName string
	// Mark says which documents carry [openReplaySession.id=N] in message:
	// "auto" (the default: warnings and errors always, info documents up to
	// MarkInfoLimit per session), "all", or "problems".
	Mark string
	// Sessionless says what becomes of documents that belong to no
	// session (health checks, bots, server-to-server calls, and backend
	// lines attributed to none): "all" (the default: every one is
	// published), "errors" (only those at level error: failed requests and
	// backend errors), or "none". OpenReplay can never show them; they
	// remain useful to a Kibana user. Skipped documents are counted
	// (replaylink_enrich_sessionless_skipped_total), never queued.
	Sessionless string
	// MarkInfoLimit is, with Mark auto, how many info documents of each
	// session carry the marker. 0 means 200.
	MarkInfoLimit int
	// AttributionGrace is how long after a request's end a backend line
	// may still be its own (pipe latency, logging after the response):
	// for window attribution the request counts as in flight until then.
	// A line read before a request started is never its own, so no grace
	// applies before the start. Access lines that name their request
	// (method, path, status) may come up to 1s after its end whatever the
	// grace. A smaller grace attributes more lines under concurrency; a
	// line read later than the grace after its request's end can then
	// only be attributed by the request it names. 0 means 20ms.
	AttributionGrace time.Duration
	// IgnoreMarkers says that the backend is never given a session a
	// client chose: the openReplaySession.id header is not a trusted
	// session source, so the proxy strips it. A marker the backend prints
	// is then text (user input, typically), never evidence of a session.
	IgnoreMarkers bool
	// Hooks says that backend lines may carry the marks of replaylink's
	// runtime hooks (capture.Line.Hook): the Attributor then keeps each
	// request's span id, which the marks name.
	Hooks bool
	// PushedLinesOnly says that the backend's output is not captured (no
	// child process, no tailed file): the only lines are pushed ones
	// (POST /ingest), which may never come. The proxy's requests are then
	// not tracked for attribution until the first line, so that they cost
	// nothing meanwhile. A pushed line naming a request by an id cannot
	// be attributed by it when the request ended before the first line,
	// and lines are never attributed by their time (pushed lines have no
	// live time anyway).
	PushedLinesOnly bool
	// QueueSize bounds the access events and the lines waiting for the
	// worker (each). 0 means 16384.
	QueueSize int
	// LineQueueBytes bounds the bytes of the lines waiting for the worker.
	// 0 means 16 MiB.
	LineQueueBytes int
	// GroupIdle is how long a multi-line record may wait for its next line
	// before it is complete. 0 means 250ms.
	GroupIdle time.Duration
	// Publisher takes the finished documents. Required.
	Publisher Publisher
	// Logger receives replaylink's own messages about the pipeline; the
	// zero value logs nothing.
	Logger zerolog.Logger
}

// Defaults.
const (
	DefaultMarkInfoLimit    = 200
	DefaultAttributionGrace = 20 * time.Millisecond
	DefaultQueueSize        = 16384
	DefaultLineQueueBytes   = 16 << 20
	DefaultGroupIdle        = 250 * time.Millisecond
)

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.HostName == "" {
		o.HostName, _ = os.Hostname()
	}
	if o.Mark == "" {
		o.Mark = "auto"
	}
	if o.MarkInfoLimit == 0 {
		o.MarkInfoLimit = DefaultMarkInfoLimit
	}
	if o.AttributionGrace == 0 {
		o.AttributionGrace = DefaultAttributionGrace
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.LineQueueBytes == 0 {
		o.LineQueueBytes = DefaultLineQueueBytes
	}
	if o.GroupIdle == 0 {
		o.GroupIdle = DefaultGroupIdle
	}
	return o
}

// Validate reports every option that is wrong, and how to fix it.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("enrich: "+format, a...)) }
	if o.Publisher == nil {
		bad("Options.Publisher is nil: documents need somewhere to go (the shipper's spool or --output)")
	}
	if _, err := parseMarkMode(o.Mark); err != nil {
		bad("%v", err)
	}
	if _, err := parseSessionless(o.Sessionless); err != nil {
		bad("%v", err)
	}
	if o.MarkInfoLimit < 0 || o.MarkInfoLimit > 1000 {
		bad("--mark-info-limit %d: want 1 to 1000 (OpenReplay shows at most 1000 documents per session; to mark no info documents use --mark problems)", o.MarkInfoLimit)
	}
	if o.AttributionGrace < 0 || o.AttributionGrace > time.Second {
		bad("--attribution-grace %v: want 0 to 1s (e.g. 20ms); a wide grace makes concurrent requests ambiguous", o.AttributionGrace)
	}
	if o.QueueSize < 0 {
		bad("QueueSize %d: want 0 (default %d) or more", o.QueueSize, DefaultQueueSize)
	}
	if o.LineQueueBytes < 0 {
		bad("LineQueueBytes %d: want 0 (default %d) or more", o.LineQueueBytes, DefaultLineQueueBytes)
	}
	if o.GroupIdle < 0 {
		bad("GroupIdle %v: want 0 (default %v) or more", o.GroupIdle, DefaultGroupIdle)
	}
	return errors.Join(errs...)
}

// sessionlessPolicy is Options.Sessionless.
type sessionlessPolicy uint8

const (
	sessionlessAll sessionlessPolicy = iota
	sessionlessErrors
	sessionlessNone
)

func parseSessionless(s string) (sessionlessPolicy, error) {
	switch s {
	case "", "all":
		return sessionlessAll, nil
	case "errors":
		return sessionlessErrors, nil
	case "none":
		return sessionlessNone, nil
	}
	return 0, fmt.Errorf("--sessionless %q: want all, errors or none", s)
}

// keeps says whether a document of no session at level l is published.
func (p sessionlessPolicy) keeps(l level) bool {
	return p == sessionlessAll || p == sessionlessErrors && l == levelError
}

func parseMarkMode(s string) (markMode, error) {
	switch s {
	case "", "auto":
		return markAuto, nil
	case "all":
		return markAll, nil
	case "problems":
		return markProblems, nil
	}
	return 0, fmt.Errorf("--mark %q: want auto, all or problems", s)
}
