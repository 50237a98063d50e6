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

// A RoundPublisher also takes a worker round's documents in one call, so
// that the spool writes them with one system call (group commit); the
// enricher uses PublishRound when its Publisher has it. The documents are
// Publish and Replace calls in the round's order, and the round is valid
// only during the call. refused counts the documents that could not be kept
// (counted by the publisher, as for Publish), and err says why the first of
// them was refused.
type RoundPublisher interface {
	Publisher
	PublishRound(r *Round) (refused int, err error)
}

// Round is the documents a worker round made, in the order they were made,
// encoded back to back in one buffer: what a RoundPublisher takes in one
// call. A round that makes more than maxRoundDocs documents hands them on
// as several Rounds.
type Round struct {
	buf  []byte
	docs []roundDoc
}

type roundDoc struct {
	// buf[previous end:idEnd] is the id, buf[idEnd:srcEnd] the source and
	// buf[srcEnd:end] its http.request.id.
	idEnd, srcEnd, end int
	session            uint64
	keyed              bool // made here, so session and the request id are known
	replace            bool
}

// Len returns the number of documents in the round.
func (r *Round) Len() int { return len(r.docs) }

// Doc returns the i-th document: its _id, its JSON body, and whether it
// replaces a document published before (Replace) or is new (Publish).
func (r *Round) Doc(i int) (id, source []byte, replace bool) {
	start := 0
	if i > 0 {
		start = r.docs[i-1].end
	}
	d := r.docs[i]
	return r.buf[start:d.idEnd], r.buf[d.idEnd:d.srcEnd], d.replace
}

// Keys returns the i-th document's OpenReplay session id (0: none) and its
// http.request.id as its JSON decodes (nil: none), so that a publisher can
// index it without parsing the JSON. ok is false when they are not known:
// a document given to Add, or a request id that is not valid UTF-8.
func (r *Round) Keys(i int) (session uint64, requestID []byte, ok bool) {
	d := r.docs[i]
	if !d.keyed {
		return 0, nil, false
	}
	if d.end > d.srcEnd {
		requestID = r.buf[d.srcEnd:d.end]
	}
	return d.session, requestID, true
}

// Add appends a document made elsewhere (enrich's worker encodes its own
// straight into the round).
func (r *Round) Add(id, source []byte, replace bool) {
	r.buf = append(r.buf, id...)
	idEnd := len(r.buf)
	r.buf = append(r.buf, source...)
	r.docs = append(r.docs, roundDoc{idEnd: idEnd, srcEnd: len(r.buf), end: len(r.buf), replace: replace})
}

// add encodes d into the round under id.
func (r *Round) add(id []byte, replace bool, d *document) {
	r.buf = append(r.buf, id...)
	idEnd := len(r.buf)
	r.buf = appendDocument(r.buf, d)
	srcEnd := len(r.buf)
	r.buf = append(r.buf, d.requestID...)
	// Invalid UTF-8 is written with replacement characters: the JSON's
	// request id is then not these bytes, and the publisher should read it.
	keyed := utf8.Valid(d.requestID)
	r.docs = append(r.docs, roundDoc{idEnd: idEnd, srcEnd: srcEnd, end: len(r.buf), session: d.session, keyed: keyed, replace: replace})
}

// Reset empties the round, keeping its memory unless a huge round grew it.
func (r *Round) Reset() {
	if cap(r.buf) > 4<<20 {
		r.buf = nil
	}
	r.buf, r.docs = r.buf[:0], r.docs[:0]
}

// publish hands the round to pub, in one call when pub is a RoundPublisher.
func (r *Round) publish(pub Publisher) (refused int, err error) {
	if bp, ok := pub.(RoundPublisher); ok {
		return bp.PublishRound(r)
	}
	for i := range r.docs {
		id, source, replace := r.Doc(i)
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
