package ship

import (
	"bytes"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/replaylink/replaylink/ship/spool"
)

// shipment is a run of consecutive spool records on its way to a
// destination, already encoded as a bulk body: per document an action line
// and a source line. The index is in the request path, so the action line
// carries the _id only.
type shipment struct {
	seq     uint64         // dispatch order, for in-order acknowledgements
	end     spool.Position // End of its last record
	started time.Time      // when its first record was read
	body    []byte
	docs    []docSpan
}

// docSpan locates one document in shipment.body.
type docSpan struct {
	start        int   // action line
	id, idEnd    int   // the _id, JSON-escaped, inside the action line
	src, end     int   // source line; end is past its '\n'
	created      int64 // Unix nanoseconds, from the spool record
	replace      bool  // a new version of the document of this _id
	failingSince int64 // first item-level 5xx, Unix nanoseconds; 0 while none
	// viaCreate: a replacement sent as a create (into a data stream, which
	// refuses the index action): its 409 means the original is there, to
	// be overwritten in its backing index (dataStreamOverwrite).
	viaCreate bool
}

func (d *docSpan) source(b *shipment) []byte { return b.body[d.src : d.end-1] }
func (d *docSpan) escapedID(b *shipment) []byte {
	return b.body[d.id:d.idEnd]
}

var shipmentPool = sync.Pool{New: func() any { return new(shipment) }}

func newShipment() *shipment {
	b := shipmentPool.Get().(*shipment)
	b.body, b.docs = b.body[:0], b.docs[:0]
	return b
}

// release returns b to the pool, unless it grew far past a normal shipment.
func (b *shipment) release(flushBytes int) {
	if cap(b.body) <= 2*flushBytes {
		shipmentPool.Put(b)
	}
}

// add appends a document: {"create":{"_id":"ID"}}\nSOURCE\n, or with the
// index action for a replacement, which overwrites what the _id holds. Into
// a data stream (dataStream), a replacement goes as a create too, marked
// viaCreate.
func (b *shipment) add(op spool.Op, id, source []byte, created time.Time, dataStream bool) {
	d := docSpan{start: len(b.body), created: created.UnixNano(), replace: op == spool.OpReplace,
		viaCreate: dataStream && op == spool.OpReplace}
	if op == spool.OpReplace && !dataStream {
		b.body = append(b.body, `{"index":{"_id":"`...)
	} else {
		b.body = append(b.body, `{"create":{"_id":"`...)
	}
	d.id = len(b.body)
	b.body = appendJSONStringContent(b.body, id)
	d.idEnd = len(b.body)
	b.body = append(b.body, "\"}}\n"...)
	d.src = len(b.body)
	b.body = append(b.body, source...)
	b.body = append(b.body, '\n')
	d.end = len(b.body)
	b.docs = append(b.docs, d)
}

// appendJSONStringContent appends s escaped for the inside of a JSON
// string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONStringContent(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return dst
}

// oneLine makes sure a JSON source holds no line break, which would split
// it in a bulk body or an output file. Valid JSON has raw line breaks only
// between tokens, where a space means the same.
func oneLine(source []byte) []byte {
	// enrich's documents never have one: two vectorized scans, not a loop.
	if bytes.IndexByte(source, '\n') < 0 && bytes.IndexByte(source, '\r') < 0 {
		return source
	}
	for i, c := range source {
		if c == '\n' || c == '\r' {
			out := append([]byte(nil), source...)
			for j := i; j < len(out); j++ {
				if out[j] == '\n' || out[j] == '\r' {
					out[j] = ' '
				}
			}
			return out
		}
	}
	return source
}
