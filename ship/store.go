package ship

import (
	"slices"
	"sync"
)

// Document is a document as the memory store keeps it.
type Document struct {
	ID     string // the Elasticsearch _id
	Source []byte // the JSON body; shared, never modify it
}

// storedFields are the document fields the store indexes, in this order.
var storedFields = []string{"openReplaySession.id", "http.request.id"}

// MemoryStore keeps the most recent documents published, bounded in count
// and bytes, for the lookup API: it is the only store in the embedded
// default, and holds what may not be in Elasticsearch yet otherwise. It is
// safe for concurrent use. A nil *MemoryStore is an empty store.
type MemoryStore struct {
	mu        sync.Mutex
	maxBytes  int64
	ring      []storedDoc // slot seq % len(ring)
	next      uint64      // seq of the next document
	oldest    uint64      // seq of the oldest one kept
	bytes     int64
	byID      map[string]uint64
	bySession map[string][]uint64
	byRequest map[string][]uint64
}

type storedDoc struct {
	id, session, request string
	source               []byte
}

// NewMemoryStore returns a store of at most maxDocs documents and maxBytes
// bytes of JSON, dropping the oldest first.
func NewMemoryStore(maxDocs int, maxBytes int64) *MemoryStore {
	return &MemoryStore{
		maxBytes:  maxBytes,
		ring:      make([]storedDoc, max(maxDocs, 1)),
		byID:      make(map[string]uint64),
		bySession: make(map[string][]uint64),
		byRequest: make(map[string][]uint64),
	}
}

// Add keeps a copy of the document, unless one with the same id is kept:
// as Elasticsearch's create, the first version stays.
func (m *MemoryStore) Add(id, source []byte) { m.put(id, source, false) }

// Replace keeps a copy of the document in place of the one with the same
// id, which keeps its place in the lookup order; or adds it, as Add. As
// Elasticsearch's index action, it wins over an Add before or after it, so
// lookups show one document, the newest version.
func (m *MemoryStore) Replace(id, source []byte) { m.put(id, source, true) }

func (m *MemoryStore) put(id, source []byte, replace bool) {
	if m == nil || int64(len(source)) > m.maxBytes {
		return
	}
	var session, request []byte
	scanFields(source, storedFields, func(i int, v []byte) {
		if i == 0 {
			session = v
		} else {
			request = v
		}
	})
	d := storedDoc{id: string(id), session: string(session), request: string(request), source: append([]byte(nil), source...)}

	m.mu.Lock()
	defer m.mu.Unlock()
	if seq, ok := m.byID[d.id]; ok {
		if replace {
			m.replaceLocked(seq, d)
		}
		return
	}
	for m.next-m.oldest >= uint64(len(m.ring)) || m.next > m.oldest && m.bytes+int64(len(d.source)) > m.maxBytes {
		m.evictOldest()
	}
	seq := m.next
	m.next++
	m.ring[seq%uint64(len(m.ring))] = d
	m.bytes += int64(len(d.source))
	m.byID[d.id] = seq
	if d.session != "" {
		m.bySession[d.session] = append(m.bySession[d.session], seq)
	}
	if d.request != "" {
		m.byRequest[d.request] = append(m.byRequest[d.request], seq)
	}
}

// replaceLocked puts d in the slot of seq, moving seq between the lookup
// indexes if its session or request changed, and evicts the oldest
// documents while the bytes are over the cap.
func (m *MemoryStore) replaceLocked(seq uint64, d storedDoc) {
	slot := &m.ring[seq%uint64(len(m.ring))]
	if slot.session != d.session {
		removeSeq(m.bySession, slot.session, seq)
		insertSeq(m.bySession, d.session, seq)
	}
	if slot.request != d.request {
		removeSeq(m.byRequest, slot.request, seq)
		insertSeq(m.byRequest, d.request, seq)
	}
	m.bytes += int64(len(d.source)) - int64(len(slot.source))
	*slot = d
	for m.bytes > m.maxBytes {
		m.evictOldest()
	}
}

// removeSeq and insertSeq keep a key's seqs in ascending order, which
// evictOldest (through dropFirst) relies on.
func removeSeq(idx map[string][]uint64, key string, seq uint64) {
	if key == "" {
		return
	}
	s := idx[key]
	if i, ok := slices.BinarySearch(s, seq); ok {
		s = slices.Delete(s, i, i+1)
	}
	if len(s) == 0 {
		delete(idx, key)
	} else {
		idx[key] = s
	}
}

func insertSeq(idx map[string][]uint64, key string, seq uint64) {
	if key == "" {
		return
	}
	s := idx[key]
	i, _ := slices.BinarySearch(s, seq)
	idx[key] = slices.Insert(s, i, seq)
}

func (m *MemoryStore) evictOldest() {
	slot := &m.ring[m.oldest%uint64(len(m.ring))]
	delete(m.byID, slot.id)
	dropFirst(m.bySession, slot.session)
	dropFirst(m.byRequest, slot.request)
	m.bytes -= int64(len(slot.source))
	*slot = storedDoc{}
	m.oldest++
}

// dropFirst removes the oldest seq of key: documents leave in the order
// they came, so it is always the first.
func dropFirst(idx map[string][]uint64, key string) {
	if key == "" {
		return
	}
	if s := idx[key]; len(s) > 1 {
		idx[key] = s[1:]
	} else {
		delete(idx, key)
	}
}

// Session returns the kept documents of an OpenReplay session (by the
// openReplaySession.id field), oldest first.
func (m *MemoryStore) Session(id string) []Document {
	return m.lookup(func() []uint64 { return m.bySession[id] })
}

// Request returns the kept documents of one request (by http.request.id),
// oldest first.
func (m *MemoryStore) Request(requestID string) []Document {
	return m.lookup(func() []uint64 { return m.byRequest[requestID] })
}

// Len returns the number of documents kept.
func (m *MemoryStore) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return int(m.next - m.oldest)
}

func (m *MemoryStore) lookup(seqs func() []uint64) []Document {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := seqs()
	out := make([]Document, 0, len(s))
	for _, seq := range s {
		d := &m.ring[seq%uint64(len(m.ring))]
		out = append(out, Document{ID: d.id, Source: d.source})
	}
	return out
}
