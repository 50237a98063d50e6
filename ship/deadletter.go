package ship

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// DeadLetterFile is the name, in the spool directory, of the file that keeps
// the documents Elasticsearch refused for good, one JSON object a line:
//
//	{"time":"2024-05-01T12:00:00.123Z","index":"logs","_id":"...","status":400,
//	 "error":{"type":"document_parsing_exception","reason":"..."},"document":"{...}"}
//
// document is the source as a JSON string (it may be what failed to parse).
// Replay a fixed document with its _id to keep the no-duplicates guarantee.
const DeadLetterFile = "dead-letter.ndjson"

// deadLetters appends refused documents to DeadLetterFile, up to maxBytes;
// past that, refused documents are only counted. Workers share it.
type deadLetters struct {
	path     string
	maxBytes int64
	index    string

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
}

func newDeadLetters(dir, index string, maxBytes int64) *deadLetters {
	return &deadLetters{path: filepath.Join(dir, DeadLetterFile), index: index, maxBytes: maxBytes}
}

// deadLetter is one refused document of a shipment.
type deadLetter struct {
	doc    *docSpan
	status int
	err    json.RawMessage
}

// write appends the entries and fsyncs, since the spool will forget these
// documents once the shipment is acknowledged. It returns how many were kept.
func (d *deadLetters) write(b *shipment, entries []deadLetter) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return 0, fmt.Errorf("dead-letter file: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, fmt.Errorf("dead-letter file: %w", err)
		}
		d.f, d.size = f, fi.Size()
	}
	d.buf = d.buf[:0]
	kept := 0
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	for _, e := range entries {
		start := len(d.buf)
		d.buf = append(d.buf, `{"time":"`...)
		d.buf = append(d.buf, now...)
		d.buf = append(d.buf, `","index":`...)
		d.buf = strconv.AppendQuote(d.buf, d.index)
		d.buf = append(d.buf, `,"_id":"`...)
		d.buf = append(d.buf, e.doc.escapedID(b)...)
		d.buf = append(d.buf, `","status":`...)
		d.buf = strconv.AppendInt(d.buf, int64(e.status), 10)
		d.buf = append(d.buf, `,"error":`...)
		if json.Valid(e.err) {
			d.buf = append(d.buf, e.err...)
		} else {
			d.buf = append(d.buf, "null"...)
		}
		d.buf = append(d.buf, `,"document":"`...)
		d.buf = appendJSONStringContent(d.buf, e.doc.source(b))
		d.buf = append(d.buf, "\"}\n"...)
		if d.size+int64(len(d.buf)) > d.maxBytes {
			d.buf = d.buf[:start]
			break
		}
		kept++
	}
	if kept == 0 {
		return 0, nil
	}
	n, err := d.f.Write(d.buf)
	d.size += int64(n)
	if err == nil {
		err = d.f.Sync()
	}
	if err != nil {
		return 0, fmt.Errorf("dead-letter file: %w", err)
	}
	return kept, nil
}

func (d *deadLetters) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
