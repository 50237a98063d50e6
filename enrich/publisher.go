package enrich

import "unicode/utf8"

// Publisher takes finished documents on their way to the shipper.
// id is the document's deterministic _id and source its JSON body; both are
// valid only during the call. An error means the document could not be kept
// (e.g. spool full) and has been counted by the publisher.
type Publisher interface {
	// Publish hands on a new document. It is created once: a resend of the
	// same id (a retry, a replay after a crash) changes nothing.
	Publish(id, source []byte) error
	// Replace hands on a newer version of a document already published
	// under id, which it overwrites wherever it arrives, whichever of the
	// two arrives first. enrich uses it to fold a backend's traceback into
	// an error access document that was published (so kept durably) as
	// soon as the request ended.
	Replace(id, source []byte) error
}

// A BatchPublisher also takes a worker round's documents in one call, so
// that the spool writes them with one system call (group commit); the
// enricher uses PublishBatch when its Publisher has it. The documents are
// Publish and Replace calls in the batch's order, and the batch is valid
// only during the call. refused counts the documents that could not be kept
// (counted by the publisher, as for Publish), and err says why the first of
// them was refused.
type BatchPublisher interface {
	Publisher
	PublishBatch(b *Batch) (refused int, err error)
}

// Batch is documents in the order they were made, encoded back to back in
// one buffer.
type Batch struct {
	buf  []byte
	docs []batchDoc
}

type batchDoc struct {
	// buf[previous end:idEnd] is the id, buf[idEnd:srcEnd] the source and
	// buf[srcEnd:end] its http.request.id.
	idEnd, srcEnd, end int
	session            uint64
	keyed              bool // made here, so session and the request id are known
	replace            bool
}

// Len returns the number of documents in the batch.
func (b *Batch) Len() int { return len(b.docs) }

// Doc returns the i-th document: its _id, its JSON body, and whether it
// replaces a document published before (Replace) or is new (Publish).
func (b *Batch) Doc(i int) (id, source []byte, replace bool) {
	start := 0
	if i > 0 {
		start = b.docs[i-1].end
	}
	d := b.docs[i]
	return b.buf[start:d.idEnd], b.buf[d.idEnd:d.srcEnd], d.replace
}

// Keys returns the i-th document's OpenReplay session id (0: none) and its
// http.request.id as its JSON decodes (nil: none), so that a publisher can
// index it without parsing the JSON. ok is false when they are not known:
// a document given to Add, or a request id that is not valid UTF-8.
func (b *Batch) Keys(i int) (session uint64, requestID []byte, ok bool) {
	d := b.docs[i]
	if !d.keyed {
		return 0, nil, false
	}
	if d.end > d.srcEnd {
		requestID = b.buf[d.srcEnd:d.end]
	}
	return d.session, requestID, true
}

// Add appends a document made elsewhere (enrich's worker encodes its own
// straight into the batch).
func (b *Batch) Add(id, source []byte, replace bool) {
	b.buf = append(b.buf, id...)
	idEnd := len(b.buf)
	b.buf = append(b.buf, source...)
	b.docs = append(b.docs, batchDoc{idEnd: idEnd, srcEnd: len(b.buf), end: len(b.buf), replace: replace})
}

// add encodes d into the batch under id.
func (b *Batch) add(id []byte, replace bool, d *document) {
	b.buf = append(b.buf, id...)
	idEnd := len(b.buf)
	b.buf = appendDocument(b.buf, d)
	srcEnd := len(b.buf)
	b.buf = append(b.buf, d.requestID...)
	// Invalid UTF-8 is written with replacement characters: the JSON's
	// request id is then not these bytes, and the publisher should read it.
	keyed := utf8.Valid(d.requestID)
	b.docs = append(b.docs, batchDoc{idEnd: idEnd, srcEnd: srcEnd, end: len(b.buf), session: d.session, keyed: keyed, replace: replace})
}

// Reset empties the batch, keeping its memory unless a huge round grew it.
func (b *Batch) Reset() {
	if cap(b.buf) > 4<<20 {
		b.buf = nil
	}
	b.buf, b.docs = b.buf[:0], b.docs[:0]
}

// publish hands the batch to pub, in one call when pub is a BatchPublisher.
func (b *Batch) publish(pub Publisher) (refused int, err error) {
	if bp, ok := pub.(BatchPublisher); ok {
		return bp.PublishBatch(b)
	}
	for i := range b.docs {
		id, source, replace := b.Doc(i)
		var e error
		if replace {
			e = pub.Replace(id, source)
		} else {
			e = pub.Publish(id, source)
		}
		if e != nil {
			refused++
			if err == nil {
				err = e
			}
		}
	}
	return refused, err
}
