package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Bodies stream through one pooled 32 KiB buffer per direction, so memory
// stays flat whatever their size. Both directions refresh the deadline of the
// side they write to before every write (IdleTimeout): a peer that stops
// reading fails the copy, a peer that is merely quiet (server-sent events)
// does not.

const copyBufSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// errClientBody says the client's request body could not be read (client
// went away, bad chunk); requestBody.err holds the cause.
var errClientBody = errors.New("reading the request body from the client failed")

// requestBody is the client's body on its way upstream. It re-frames the
// body: Content-Length bodies are copied as they are, chunked ones are
// decoded by fasthttp and chunked again, one chunk per read.
type requestBody struct {
	x       *exchange
	src     io.Reader // fasthttp's stream of the client's body, nil without one
	length  int64     // declared length, or -1 for chunked
	framed  bool      // the request has a body framing header to send
	pre     []byte    // read ahead before choosing an upstream (chunked)
	preBuf  [1 << 10]byte
	n       int64 // bytes read from the client
	started bool  // some of the body was written towards an upstream
	err     error // why reading from the client failed
}

func (b *requestBody) reset(x *exchange) {
	b.x, b.src, b.length, b.framed, b.pre, b.n, b.started, b.err = x, nil, 0, false, nil, 0, false, nil
}

// readAhead reads the first piece of a chunked body before anything is sent
// upstream, so a broken first chunk size is refused with 400 and never
// reaches a backend. Later chunks are checked as they stream; a broken one
// aborts the upstream request mid-body.
func (b *requestBody) readAhead() error {
	if b.src == nil || b.length >= 0 {
		return nil
	}
	b.x.extendClientRead()
	n, err := b.src.Read(b.preBuf[:])
	b.pre = b.preBuf[:n]
	b.n += int64(n)
	if err == io.EOF {
		// The whole body is in pre: send it with a Content-Length.
		b.src, b.length = nil, int64(n)
		return nil
	}
	if err != nil {
		b.err = err
		return errClientBody
	}
	return nil
}

// appendFraming appends the framing header the upstream request needs.
func (b *requestBody) appendFraming(dst []byte) []byte {
	switch {
	case !b.framed:
		return dst
	case b.length >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, b.length, 10)
		return append(dst, "\r\n"...)
	}
	return append(dst, "Transfer-Encoding: chunked\r\n"...)
}

// writeTo copies the body to w, the upstream connection's writer. A failure
// to read from the client returns errClientBody; any other error is the
// upstream's.
func (b *requestBody) writeTo(w *bufio.Writer, conn net.Conn, idle time.Duration) error {
	if !b.framed {
		return nil
	}
	chunked := b.length < 0
	if len(b.pre) > 0 {
		b.started = true
		if err := writeBodyPiece(w, conn, idle, b.pre, chunked); err != nil {
			return err
		}
	}
	if b.src != nil {
		buf := copyBufs.Get().(*[copyBufSize]byte)
		defer copyBufs.Put(buf)
		for {
			b.x.extendClientRead()
			n, err := b.src.Read(buf[:])
			if n > 0 {
				b.n += int64(n)
				b.started = true
				if werr := writeBodyPiece(w, conn, idle, buf[:n], chunked); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.err = err
				return errClientBody
			}
		}
	}
	if !chunked && b.n < b.length {
		// fasthttp reports a client that closed mid-body as a plain EOF.
		b.err = io.ErrUnexpectedEOF
		return errClientBody
	}
	if chunked {
		_, err := w.WriteString("0\r\n\r\n")
		return err
	}
	return nil
}

func writeBodyPiece(w *bufio.Writer, conn net.Conn, idle time.Duration, p []byte, chunked bool) error {
	if err := conn.SetWriteDeadline(time.Now().Add(idle)); err != nil {
		return err
	}
	if chunked {
		var size [20]byte
		hdr := strconv.AppendInt(size[:0], int64(len(p)), 16)
		hdr = append(hdr, '\r', '\n')
		if _, err := w.Write(hdr); err != nil {
			return err
		}
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	if chunked {
		_, err := w.WriteString("\r\n")
		return err
	}
	return nil
}

// responseBody is what fasthttp writes to the client after the handler
// returned: the upstream's streamed body, or a body the proxy made. fasthttp
// calls CloseWithError when it is done with it, with the error that stopped
// the write, and that is where the request's access event is finished.
type responseBody struct {
	x       *exchange
	src     io.Reader // upstream body stream; nil for local bodies or none
	local   []byte    // proxy-made body
	eof     bool      // src was read to its end
	readErr error     // src failed (the upstream's fault)
}

var _ fasthttp.BodyWriterTo = (*responseBody)(nil)
var _ fasthttp.ReadCloserWithError = (*responseBody)(nil)

func (b *responseBody) reset(x *exchange) {
	b.x, b.src, b.local, b.eof, b.readErr = x, nil, nil, false, nil
}

// SupportsBodyWriteTo lets fasthttp hand WriteTo its writer, which flushes
// each chunk of a chunked response: server-sent events reach the client as
// the upstream sends them.
func (b *responseBody) SupportsBodyWriteTo() bool { return true }

// WriteTo copies the body to fasthttp's writer for the client.
func (b *responseBody) WriteTo(w io.Writer) (int64, error) {
	if b.src == nil {
		if len(b.local) == 0 {
			return 0, nil
		}
		n, err := w.Write(b.local)
		b.x.bytesOut += int64(n)
		b.local = b.local[n:]
		return int64(n), err
	}
	buf := copyBufs.Get().(*[copyBufSize]byte)
	defer copyBufs.Put(buf)
	var total int64
	for {
		n, err := b.src.Read(buf[:])
		if n > 0 {
			b.x.tee(buf[:n])
			b.x.extendClientWrite()
			wn, werr := w.Write(buf[:n])
			total += int64(wn)
			b.x.bytesOut += int64(wn)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			b.eof = true
			return total, nil
		}
		if err != nil {
			b.readErr = err
			return total, err
		}
	}
}

// Read serves fasthttp paths that do not use WriteTo.
func (b *responseBody) Read(p []byte) (int, error) {
	if b.src == nil {
		if len(b.local) == 0 {
			return 0, io.EOF
		}
		n := copy(p, b.local)
		b.local = b.local[n:]
		b.x.bytesOut += int64(n)
		return n, nil
	}
	n, err := b.src.Read(p)
	b.x.tee(p[:n])
	b.x.bytesOut += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.readErr = err
	}
	return n, err
}

// CloseWithError ends the request: err is nil when the whole response
// reached the client.
func (b *responseBody) CloseWithError(err error) error {
	b.x.finish(err)
	return nil
}
