package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// An upstream connection carries the requests of many clients one after
// the other, so a byte the upstream sends beyond the end of one response is
// read as the start of the next client's response: that client receives an
// answer meant for someone else. Buggy backends do send such bytes: a
// second response, a body on a HEAD answer (Python's do_HEAD = do_GET), a
// body after a 204. The proxy therefore reuses a connection only when it
// knows where the last response ended and nothing followed it:
//
//   - a response whose framing is ambiguous (Content-Length together with
//     Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a head the proxy's
//     strict scanner refuses) closes its connection;
//   - so does an answer that must not have a body (to HEAD, 204, 304) but
//     announces one: a server that announces a body may well send it, and
//     whether it does is only known once its bytes arrive, which can be
//     after the next request went out;
//   - bytes left in the read buffer after a response close the connection;
//   - every reuse is preceded by a non-blocking peek at the idle socket
//     (one recvfrom syscall): a byte, or the upstream's close, retires it.
//
// What no proxy can see are bytes an upstream sends only after the next
// request went out; those are indistinguishable from that request's answer.
// Each refusal is counted in replaylink_upstream_reuse_refused_total.

// reuseRefusal says why a connection was closed instead of reused.
type reuseRefusal uint8

const (
	reuseOK                  reuseRefusal = iota
	refuseClosed                          // the upstream closed or reset the idle connection
	refuseStrayBytes                      // bytes came after the end of the last response
	refuseAmbiguousLength                 // the response's framing fields contradict each other
	refuseBodilessWithLength              // a HEAD, 204 or 304 answer announced a body
	refuseUnchecked                       // this platform cannot peek at a socket (see peek_other.go)
	numReuseRefusals
)

var reuseRefusalNames = [numReuseRefusals]string{"", "closed", "stray_bytes", "ambiguous_length", "bodiless_with_length", "unchecked"}

// headFraming is what a raw response head says about its body. fasthttp's
// parsed header keeps only the length it settled on, not the fields it
// chose between, so the head is scanned before fasthttp parses it.
type headFraming uint8

const (
	framingContentLength    headFraming = 1 << iota // a Content-Length field
	framingNonZeroLength                            // ... other than 0
	framingTransferEncoding                         // a Transfer-Encoding field
	framingUnclear                                  // a line the strict scanner refuses
)

// scanFraming reads the framing fields of a response head (status line
// included).
func scanFraming(head []byte) headFraming {
	head = trimLeadingNewlines(head)
	i := bytes.IndexByte(head, '\n')
	if i < 0 {
		return framingUnclear
	}
	var f headFraming
	s := headerScanner{b: head[i+1:]}
	for s.next() {
		switch classifyHeader(s.key) {
		case hdrContentLength:
			f |= framingContentLength
			if string(s.value) != "0" {
				f |= framingNonZeroLength
			}
		case hdrTransferEncoding:
			f |= framingTransferEncoding
		}
	}
	if s.bad {
		f |= framingUnclear
	}
	return f
}

// refusalAfter is the refusal a response's head alone earns its connection.
func refusalAfter(f headFraming, resp *fasthttp.ResponseHeader, bodiless bool) reuseRefusal {
	switch {
	case f&framingUnclear != 0,
		f&framingTransferEncoding != 0 && (f&framingContentLength != 0 || !resp.IsHTTP11()):
		return refuseAmbiguousLength
	case bodiless && f&(framingTransferEncoding|framingNonZeroLength) != 0:
		return refuseBodilessWithLength
	}
	return reuseOK
}

// readHead reads the final response head into resp, skipping interim (1xx)
// answers as fasthttp would, and returns the framing the head announced.
func readHead(br *bufio.Reader, resp *fasthttp.Response) (headFraming, error) {
	for interim := 0; ; interim++ {
		head, err := peekHead(br)
		if err != nil {
			return 0, err
		}
		f := scanFraming(head)
		if err := resp.Header.Read(br); err != nil {
			return 0, err
		}
		status := resp.StatusCode()
		if status >= 200 || status == fasthttp.StatusSwitchingProtocols {
			return f, nil
		}
		if interim == maxInterimResponses {
			return 0, errTooManyInterim
		}
	}
}

// maxInterimResponses bounds the 1xx answers before the final one.
const maxInterimResponses = 16

var errTooManyInterim = errors.New("more than 16 interim (1xx) responses")

// peekHead waits for the next response head in br and returns it without
// consuming it: up to and including the empty line that ends it. A head
// larger than br's buffer is bufio.ErrBufferFull.
func peekHead(br *bufio.Reader) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err
	}
	from := 0
	for {
		b, _ := br.Peek(br.Buffered())
		if end := headEnd(b, from); end >= 0 {
			return b[:end], nil
		}
		from = max(0, len(b)-2)
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd returns the length of the head at the start of b (empty lines
// before it included, as fasthttp skips them), or -1 while it is
// incomplete. Searching starts at from, so a growing buffer is scanned
// once.
func headEnd(b []byte, from int) int {
	lead := len(b) - len(trimLeadingNewlines(b))
	for i := max(from, lead); i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1 // just after a line's LF: is the next line empty?
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		case i+1 >= len(b):
			return -1
		}
	}
	return -1
}

func trimLeadingNewlines(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// idleRefusal checks a pooled connection just before it carries a request.
func idleRefusal(c net.Conn) reuseRefusal {
	if tc, ok := c.(*tls.Conn); ok {
		if r := tlsRefusal(tc); r != reuseOK {
			return r
		}
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok || tc.raw == nil {
		// Cannot happen: every pooled connection was dialed by dialer.
		return refuseClosed
	}
	if err := tc.raw.Read(tc.peekFD); err != nil {
		return refuseClosed
	}
	return tc.peeked
}

// tlsRefusal reads from an idle TLS connection with a deadline already
// past. crypto/tls hands out what it holds of records it has read (a stray
// response in the same record as the end of the last one) and, for want
// of time, does not wait for the socket, which the peek then looks at.
func tlsRefusal(c *tls.Conn) reuseRefusal {
	if err := c.SetReadDeadline(longAgo); err != nil {
		return refuseClosed
	}
	var one [1]byte
	n, err := c.Read(one[:])
	if n > 0 {
		return refuseStrayBytes
	}
	if !isTimeout(err) || c.SetReadDeadline(time.Time{}) != nil {
		return refuseClosed
	}
	return reuseOK
}

var longAgo = time.Unix(1, 0)
