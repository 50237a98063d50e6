package enrich

import (
	"bytes"
	"hash/maphash"
	"time"
)

// The id table of the Attributor: request ids and trace ids of recent
// requests, without an allocation per request. Guarded by Attributor.mu.

// idHash is the key of an id in the id table.
func (a *Attributor) idHash(id []byte) uint64 { return maphash.Bytes(a.seed, id) }

// idKind tells request ids, trace ids and span ids apart in the id table.
type idKind uint8

const (
	idRequest idKind = iota + 1
	idTrace
	idSpan // the proxy's span of a request, which runtime hooks' marks name
)

// idTable maps the request ids and trace ids of recent requests to what
// they identify. Its map is keyed by a 64-bit hash of the id (idHash), and
// a match is checked against the id's bytes: of two ids with one hash, the
// later one is not registered, so that it attributes nothing rather than
// something wrong. Entries are reused with their buffers: once the table is
// at its size, a request costs no allocation.
type idTable struct {
	byHash  map[uint64]uint32 // index in entries
	entries []idEntry         // [0] is not used: index 0 is no entry
	free    []uint32          // indexes of dropped entries
	order   ring[idRef]       // one per entry, in the order they were made, for expiry
}

// idEntry is what a request id or trace id points to.
type idEntry struct {
	id      []byte // a request id's text, a trace id's 16 bytes
	hash    uint64
	kind    idKind
	gen     uint32 // counts the ids the entry has held, for idHandle
	session uint64
	seq     uint64 // 0 when several requests share the id
	expires time.Time
	// The window of the requests with the id: from the first one's start
	// to the last one's end; open counts those still in flight.
	first, last time.Time
	open        int32
	conflict    bool // several sessions used the id: it identifies none
	// client: a client chose the id (an X-Request-ID or traceparent it
	// sent), so it may have planted it in another user's input too: it
	// counts in a structured field only, never in free text.
	client bool
}

// idUse is one request's use of an id.
type idUse struct {
	session, seq uint64
	start, end   time.Time // end zero: in flight
	client       bool
}

// idHandle is how a request in flight finds its ids' entries at its end
// without a lookup; the zero handle is no entry.
type idHandle struct{ index, gen uint32 }

type idRef struct {
	index   uint32
	expires time.Time // of the entry when it was queued
}

func newIDTable() idTable {
	return idTable{byHash: make(map[uint64]uint32), entries: make([]idEntry, 1), order: newRing[idRef](idCapacity)}
}

// add registers a request with an id, or adds it to those the id already
// points to; hash is the id's idHash.
func (t *idTable) add(kind idKind, hash uint64, id []byte, u idUse, expires time.Time) idHandle {
	if i, ok := t.byHash[hash]; ok {
		e := &t.entries[i]
		if e.kind != kind || !bytes.Equal(e.id, id) {
			return idHandle{} // another id with the same hash
		}
		e.merge(u, expires)
		return idHandle{i, e.gen}
	}
	if t.order.full() {
		for !t.dropOldest() {
		}
	}
	var i uint32
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
	} else {
		i = uint32(len(t.entries))
		t.entries = append(t.entries, idEntry{})
	}
	e := &t.entries[i]
	e.id = append(e.id[:0], id...)
	e.hash, e.kind, e.session, e.seq, e.expires, e.conflict = hash, kind, u.session, u.seq, expires, false
	e.first, e.last, e.open, e.client = u.start, u.end, 0, u.client
	if u.end.IsZero() {
		e.open = 1
	}
	t.byHash[hash] = i
	t.order.push(idRef{i, expires})
	return idHandle{i, e.gen}
}

// lookup returns the entry of an id, or nil.
func (t *idTable) lookup(kind idKind, hash uint64, id []byte) *idEntry {
	i, ok := t.byHash[hash]
	if !ok {
		return nil
	}
	if e := &t.entries[i]; e.kind == kind && bytes.Equal(e.id, id) {
		return e
	}
	return nil
}

// renew records the end of the request that made h, unless its id was
// dropped since h was made; it reports whether it did.
func (t *idTable) renew(h idHandle, end, expires time.Time) bool {
	if h.index == 0 || t.entries[h.index].gen != h.gen {
		return false
	}
	e := &t.entries[h.index]
	if e.open > 0 {
		e.open--
	}
	if end.After(e.last) {
		e.last = end
	}
	if expires.After(e.expires) {
		e.expires = expires
	}
	return true
}

// merge adds a request to what an id points to. An id used by two sessions
// identifies neither; an id used by two requests of one session still
// identifies the session but no single request.
func (e *idEntry) merge(u idUse, expires time.Time) {
	if e.session != u.session {
		e.conflict = true
	}
	if e.seq != u.seq {
		e.seq = 0
	}
	if expires.After(e.expires) {
		e.expires = expires
	}
	if u.start.Before(e.first) {
		e.first = u.start
	}
	if u.end.IsZero() {
		e.open++
	} else if u.end.After(e.last) {
		e.last = u.end
	}
	e.client = e.client || u.client
}

// inWindow says whether a line printed at t may be one of the id's
// requests': none had started before t, or all had ended more than grace
// before it.
func (e *idEntry) inWindow(t time.Time, grace time.Duration) bool {
	return !t.Before(e.first) && (e.open > 0 || !t.After(e.last.Add(grace)))
}

// expire drops the ids whose time was up before now.
func (t *idTable) expire(now time.Time) {
	for t.order.len() > 0 && t.order.front().expires.Before(now) {
		t.dropOldest()
	}
}

// dropOldest drops the entry queued first, unless it was renewed since it
// was queued: then it goes back in the queue with its new time, and
// dropOldest reports false. So renewing costs no queueing, and each entry
// is in the queue once.
func (t *idTable) dropOldest() bool {
	r := t.order.pop()
	if e := &t.entries[r.index]; e.expires.After(r.expires) {
		t.order.push(idRef{r.index, e.expires})
		return false
	}
	t.drop(r.index)
	return true
}

func (t *idTable) drop(i uint32) {
	e := &t.entries[i]
	delete(t.byHash, e.hash)
	e.gen++
	t.free = append(t.free, i)
}

func (t *idTable) len() int { return len(t.byHash) }
