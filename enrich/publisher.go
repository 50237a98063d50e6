package enrich

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
// pipeline uses PublishBatch when its Publisher has it. The documents are
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
	idEnd, end int // the id is buf[previous end:idEnd], the source buf[idEnd:end]
	replace    bool
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
	return b.buf[start:d.idEnd], b.buf[d.idEnd:d.end], d.replace
}

// Add appends a document made elsewhere (enrich's worker encodes its own
// straight into the batch).
func (b *Batch) Add(id, source []byte, replace bool) {
	b.buf = append(b.buf, id...)
	idEnd := len(b.buf)
	b.buf = append(b.buf, source...)
	b.docs = append(b.docs, batchDoc{idEnd: idEnd, end: len(b.buf), replace: replace})
}

// add encodes d into the batch under id.
func (b *Batch) add(id []byte, replace bool, d *document) {
	b.buf = append(b.buf, id...)
	idEnd := len(b.buf)
	b.buf = appendDocument(b.buf, d)
	b.docs = append(b.docs, batchDoc{idEnd: idEnd, end: len(b.buf), replace: replace})
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
