package proxy

import (
	"sync"
	"time"
)

// SessionSource says where the OpenReplay session id of a request was found.
type SessionSource uint8

const (
	SourceNone            SessionSource = iota
	SourceHeader                        // header openReplaySession.id
	SourceToken                         // X-OpenReplay-Session-Token, HMAC verified
	SourceTokenUnverified               // token, no secret configured to verify it
	SourceBaggage                       // W3C baggage entry openReplaySession.id
	SourceCookie                        // configured cookie
	SourceQuery                         // configured query parameter
)

var sourceNames = [...]string{"", "header", "token", "token-unverified", "baggage", "cookie", "query"}

// String returns the name used in documents (openReplaySession.source) and metrics.
func (s SessionSource) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// RequestStart describes a request at the moment the proxy has read its
// headers and is about to forward it. Byte slices are valid only during
// Observer.RequestStarted.
type RequestStart struct {
	Seq       uint64 // unique within the process; pairs the start with its AccessEvent
	Start     time.Time
	Session   uint64 // 0: no session
	Source    SessionSource
	Method    []byte
	Path      []byte // without the query, as the client sent it
	RequestID []byte
	TraceID   [16]byte
	SpanID    [8]byte
	// ClientRequestID says that RequestID is the client's X-Request-ID,
	// kept as sent; false: the proxy made it. ClientTrace says that TraceID
	// continues the client's traceparent. A client may plant an id it chose
	// in another user's input, so enrich trusts such ids less.
	ClientRequestID, ClientTrace bool
	// Preflight marks a CORS preflight (OPTIONS with Origin and
	// Access-Control-Request-Method): browsers send it without the
	// session, and backends answer it without running the app's code.
	Preflight bool
}

// AccessEvent is the record of one finished request. It is pooled: the
// Observer that receives it owns it and must call Release exactly once when it
// no longer reads it (possibly on another goroutine).
type AccessEvent struct {
	Seq       uint64
	Start     time.Time
	Duration  time.Duration
	Method    []byte
	Path      []byte
	Query     []byte // already redacted
	Status    int    // 499 when the client went away
	BytesIn   int64
	BytesOut  int64
	Upstream  []byte // host:port that answered, empty when none did
	ClientIP  []byte
	UserAgent []byte
	Session   uint64
	Source    SessionSource
	RequestID []byte
	TraceID   [16]byte
	SpanID    [8]byte
	// ClientRequestID and ClientTrace: as in RequestStart.
	ClientRequestID, ClientTrace bool
	// ProxyError is set when the proxy itself made the response (502, 504) or
	// the client went away: e.g. "upstream refused connection".
	ProxyError []byte
	// ErrorBody holds the first bytes of a 5xx response body, teed from the stream.
	ErrorBody []byte
}

var eventPool = sync.Pool{New: func() any { return new(AccessEvent) }}

// AcquireEvent returns an empty event from the pool.
func AcquireEvent() *AccessEvent { return eventPool.Get().(*AccessEvent) }

// Release resets the event and returns it to the pool, keeping its buffers.
func (e *AccessEvent) Release() {
	*e = AccessEvent{
		Method: e.Method[:0], Path: e.Path[:0], Query: e.Query[:0], Upstream: e.Upstream[:0],
		ClientIP: e.ClientIP[:0], UserAgent: e.UserAgent[:0], RequestID: e.RequestID[:0],
		ProxyError: e.ProxyError[:0], ErrorBody: e.ErrorBody[:0],
	}
	eventPool.Put(e)
}

// Observer is told about every proxied request. Both methods run on the
// request's goroutine and must never block: the proxy's latency depends on it.
type Observer interface {
	RequestStarted(s *RequestStart)
	// RequestFinished takes ownership of ev (see AccessEvent).
	RequestFinished(ev *AccessEvent)
}
