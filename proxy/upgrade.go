package proxy

import (
	"io"
	"net"
	"time"
)

// Upgrade requests (WebSocket and other Connection: Upgrade protocols) get a
// fresh upstream connection. When the upstream switches protocols, the proxy
// hijacks the client connection from fasthttp, sends it the upstream's 101
// and then copies bytes both ways until either side closes. The access event
// is finished when the tunnel closes; it records status 101 and the bytes
// tunneled each way.

// hijack takes over the client connection after the handler returns.
func (x *exchange) hijack() {
	x.status = 101
	x.local = x.appendSwitchingHead(x.local[:0])
	x.ctx.HijackSetNoResponse(true)
	x.ctx.Hijack(x.tunnel)
}

// appendSwitchingHead is the upstream's 101 response with the proxy's
// X-Request-ID; its Connection and Upgrade fields are kept, since they are
// the answer to the upgrade.
func (x *exchange) appendSwitchingHead(dst []byte) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"...)
	for k, v := range x.resp.Header.All() {
		switch classifyHeader(k) {
		case hdrContentLength, hdrTransferEncoding, hdrXRequestID, hdrKeepAlive, hdrProxyConnection:
			continue
		}
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	}
	dst = appendField(dst, HeaderRequestID, x.ev.RequestID)
	return append(dst, "\r\n"...)
}

// tunnel runs on fasthttp's hijack goroutine with the client connection.
func (x *exchange) tunnel(client net.Conn) {
	upConn := x.rawConn
	_ = client.SetWriteDeadline(time.Now().Add(x.p.opts.IdleTimeout))
	if _, err := client.Write(x.local); err != nil {
		x.finish(err)
		return
	}
	_ = client.SetWriteDeadline(time.Time{})

	clientDone := make(chan int64, 1)
	go func() {
		buf := copyBufs.Get().(*[copyBufSize]byte)
		n, _ := io.CopyBuffer(upConn, onlyReader{client}, buf[:])
		copyBufs.Put(buf)
		clientDone <- n
		// Let the other direction end too.
		_ = upConn.SetDeadline(time.Now())
	}()
	buf := copyBufs.Get().(*[copyBufSize]byte)
	n, _ := io.CopyBuffer(onlyWriter{client}, onlyReader{x.br}, buf[:])
	copyBufs.Put(buf)
	_ = client.SetDeadline(time.Now())
	x.tunnelIn = <-clientDone
	x.bytesOut += n
	x.finish(nil)
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so io.CopyBuffer uses the
// pooled buffer instead of allocating one of its own.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
