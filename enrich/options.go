package enrich

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/choice"
)

// Options configure an Enricher. The settings a user gives (Mark,
// Sessionless, MarkInfoLimit, AttributionGrace, QueueSize) mean what they
// say at zero, or Validate refuses them; their defaults are config's. Only
// HostName, LineQueueBytes and GroupIdle, which no user sets, take a
// value of enrich's own when zero.
type Options struct {
	// ServiceName is service.name of every document; empty leaves it out.
	ServiceName string
	// HostName is host.name of every document; empty means os.Hostname.
	HostName string
	// Mark says which documents carry [openReplaySession.id=N] in message.
	Mark MarkMode
	// Sessionless says what becomes of documents that belong to no
	// session (health checks, bots, server-to-server calls, and backend
	// lines attributed to none). OpenReplay can never show them; they
	// remain useful to a Kibana user. Skipped documents are counted
	// (replaylink_enrich_sessionless_skipped_total), never queued.
	Sessionless SessionlessPolicy
	// MarkInfoLimit is, with Mark auto, how many info documents of each
	// session carry the marker, 0 to 1000: 0 marks none (problems are
	// marked whatever the limit).
	MarkInfoLimit int
	// AttributionGrace is how long after a request's end a backend line
	// may still be its own (pipe latency, logging after the response):
	// for window attribution the request counts as in flight until then.
	// A line read before a request started is never its own, so no grace
	// applies before the start. Access lines that name their request
	// (method, path, status) may come up to 1s after its end whatever the
	// grace. A smaller grace attributes more lines under concurrency; a
	// line read later than the grace after its request's end can then
	// only be attributed by the request it names. 0 is no grace: a line
	// must be read while its request is in flight. At most 1s.
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
	// worker (each); at least 1.
	QueueSize int
	// LineQueueBytes bounds the bytes of the lines waiting for the worker.
	// 0 means lineQueueBytes.
	LineQueueBytes int
	// GroupIdle is how long a multi-line record may wait for its next line
	// before it is complete. 0 means groupIdle.
	GroupIdle time.Duration
	// Publisher takes the finished documents. Required.
	Publisher Publisher
	// Logger receives replaylink's own messages about the enricher; the
	// zero value logs nothing.
	Logger zerolog.Logger
}

// Values of the options no user sets, when left zero.
const (
	lineQueueBytes = 16 << 20
	groupIdle      = 250 * time.Millisecond
)

// Ranges of the user's settings, which config checks too.
const (
	// MaxMarkInfoLimit: OpenReplay shows at most 1000 documents of a
	// session, so more marked info documents could only push its problems
	// out of view.
	MaxMarkInfoLimit = 1000
	// MaxAttributionGrace: a wider grace makes concurrent requests'
	// windows overlap, and their lines ambiguous.
	MaxAttributionGrace = time.Second
)

// withInternalDefaults returns o with the options no user sets given
// enrich's own values where zero.
func (o Options) withInternalDefaults() Options {
	if o.HostName == "" {
		o.HostName, _ = os.Hostname()
	}
	if o.LineQueueBytes == 0 {
		o.LineQueueBytes = lineQueueBytes
	}
	if o.GroupIdle == 0 {
		o.GroupIdle = groupIdle
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
	if err := choice.Check("--mark", o.Mark, markModeNames); err != nil {
		bad("%v", err)
	}
	if err := choice.Check("--sessionless", o.Sessionless, sessionlessNames); err != nil {
		bad("%v", err)
	}
	if o.MarkInfoLimit < 0 || o.MarkInfoLimit > MaxMarkInfoLimit {
		bad("--mark-info-limit %d: want 0 to %d (0 marks no info documents; OpenReplay shows at most 1000 documents per session)", o.MarkInfoLimit, MaxMarkInfoLimit)
	}
	if o.AttributionGrace < 0 || o.AttributionGrace > MaxAttributionGrace {
		bad("--attribution-grace %v: want 0 to %v (0: no grace; e.g. 20ms); a wide grace makes concurrent requests ambiguous", o.AttributionGrace, MaxAttributionGrace)
	}
	if o.QueueSize < 1 {
		bad("--event-queue %d: want 1 or more (e.g. 16384)", o.QueueSize)
	}
	if o.LineQueueBytes < 0 {
		bad("LineQueueBytes %d: want 0 (%d) or more", o.LineQueueBytes, lineQueueBytes)
	}
	if o.GroupIdle < 0 {
		bad("GroupIdle %v: want 0 (%v) or more", o.GroupIdle, groupIdle)
	}
	return errors.Join(errs...)
}

// SessionlessPolicy is what becomes of the documents of no session
// (--sessionless). Its zero value is SessionlessAll.
type SessionlessPolicy uint8

const (
	SessionlessAll    SessionlessPolicy = iota // every one is published
	SessionlessErrors                          // only those at level error: failed requests and backend errors
	SessionlessNone                            // none
)

var sessionlessNames = []string{"all", "errors", "none"}

func (p SessionlessPolicy) String() string { return choice.Name(p, sessionlessNames) }

// UnmarshalText takes all, errors or none.
func (p *SessionlessPolicy) UnmarshalText(b []byte) error {
	return choice.Parse(p, b, sessionlessNames)
}

// keeps says whether a document of no session at level l is published.
func (p SessionlessPolicy) keeps(l level) bool {
	return p == SessionlessAll || p == SessionlessErrors && l == levelError
}
