package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ErrorKind says what went wrong between the proxy and an upstream. The kind
// decides everything that follows: the status the client gets, whether the
// request may go to another upstream, whether the upstream's health suffers,
// and the label of replaylink_upstream_errors_total.
type ErrorKind uint8

const (
	KindRefused        ErrorKind = iota + 1 // nothing listens: nothing was sent, another upstream may take the request
	KindConnectTimeout                      // connecting took longer than ConnectTimeout
	KindUnreachable                         // name did not resolve, no route, TLS failed
	KindReset                               // connection reset or closed before a complete response
	KindHeaderTimeout                       // no response headers within ResponseHeaderTimeout
	KindProtocol                            // the response was not valid HTTP/1.1
	KindBusy                                // MaxConnsPerUpstream connections in use for ConnectTimeout
	KindBodyAborted                         // the response body broke after its headers were sent
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"", "refused", "connect_timeout", "unreachable", "reset", "header_timeout", "protocol", "busy", "body_aborted"}

// String is the kind's metric label.
func (k ErrorKind) String() string {
	if k < numErrorKinds {
		return errorKindNames[k]
	}
	return "unknown"
}

// Status is what the client gets when the proxy answers for the upstream.
func (k ErrorKind) Status() int {
	switch k {
	case KindConnectTimeout, KindHeaderTimeout:
		return fasthttp.StatusGatewayTimeout
	case KindBusy:
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusBadGateway
}

// Retryable reports whether a request may safely go to another upstream: only
// a refused connection proves the request was never seen.
func (k ErrorKind) Retryable() bool { return k == KindRefused }

// countsAgainstHealth reports failures that say the upstream is unwell (as
// opposed to the proxy being busy).
func (k ErrorKind) countsAgainstHealth() bool { return k != KindBusy && k != KindBodyAborted }

// event is the AccessEvent.ProxyError text.
func (k ErrorKind) event() string {
	switch k {
	case KindRefused:
		return "upstream refused connection"
	case KindConnectTimeout:
		return "upstream connect timeout"
	case KindUnreachable:
		return "upstream unreachable"
	case KindReset:
		return "upstream closed connection before responding"
	case KindHeaderTimeout:
		return "upstream response header timeout"
	case KindProtocol:
		return "upstream sent an invalid response"
	case KindBusy:
		return "no free upstream connection"
	case KindBodyAborted:
		return "upstream response body aborted"
	}
	return "upstream error"
}

// body is the start of the text/plain body the proxy answers with.
func (k ErrorKind) body() string {
	switch k {
	case KindRefused:
		return "502 Bad Gateway: the upstream refused the connection\n"
	case KindConnectTimeout:
		return "504 Gateway Timeout: connecting to the upstream timed out\n"
	case KindUnreachable:
		return "502 Bad Gateway: the upstream could not be reached\n"
	case KindReset:
		return "502 Bad Gateway: the upstream closed the connection without a response\n"
	case KindHeaderTimeout:
		return "504 Gateway Timeout: the upstream did not answer in time\n"
	case KindProtocol:
		return "502 Bad Gateway: the upstream sent an invalid response\n"
	case KindBusy:
		return "503 Service Unavailable: all upstream connections are busy\n"
	}
	return "502 Bad Gateway\n"
}

// UpstreamError is a failure talking to one upstream.
type UpstreamError struct {
	Kind     ErrorKind
	Upstream string // host:port
	Err      error
}

func (e *UpstreamError) Error() string {
	return "upstream " + e.Upstream + ": " + e.Kind.event() + ": " + e.Err.Error()
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// classifyDialError maps an error from dialing (or waiting for a pooled
// connection) to its kind.
func classifyDialError(err error) ErrorKind {
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrTimeout):
		return KindBusy
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.As(err, &dnsErr):
		return KindUnreachable
	case errors.As(err, &ne) && ne.Timeout():
		return KindConnectTimeout
	}
	return KindUnreachable
}

// classifyExchangeError maps an error from writing the request or reading
// the response headers to its kind.
func classifyExchangeError(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return KindHeaderTimeout
	case isConnectionLoss(err):
		return KindReset
	}
	return KindProtocol
}

// isConnectionLoss reports errors that mean the peer closed or reset the
// connection.
func isConnectionLoss(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, fasthttp.ErrConnectionClosed)
}
