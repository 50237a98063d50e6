package memstore

import (
	"cmp"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/replaylink/replaylink/internal/jsonscan"
)

// Document is a document as the memory store keeps it.
type Document struct {
	ID     string // the Elasticsearch _id
	Source []byte // the JSON body, a copy the caller owns
}

// storedFields are the document fields the store indexes, in this order.
var storedFields = []string{"openReplaySession.id", "http.request.id"}

// The keys of a record, in the order they are kept, before the source.
const (
	keyID = iota
	keySession
	keyRequest
	numKeys
)

// minData is the size the byte ring starts at.
const minData = 1 << 20

// growSlice paces the copy when a ring grows: every growSlice entries, or
// growSlice<<8 bytes (256 KiB, about 0.3 ms with the page faults of fresh
// memory), the copy lets other goroutines run. A ring
// grows by half of up to tens of megabytes, and put runs on enrich's worker:
// copied in one go, a late step held the only processor (GOMAXPROCS=1) for
// 14 ms while requests waited (a runtime trace of replaylink filling its
// store at 5,000 requests/s). Only lookups wait on mu meanwhile.
const growSlice = 1024

// Store is the memory store: it keeps the most recent documents published,
// bounded in count and bytes, for the lookup API: it is the only store in
// the embedded default, and holds what may not be in Elasticsearch yet
// otherwise. It is safe for concurrent use. A nil *Store is an empty store.
//
// It owns what it keeps: Add, Replace and Keep copy the id, the indexed keys and the source into the store, and lookups copy them out, so
// callers keep their slices and own what they get back. Nothing the store
// keeps holds a pointer (one []byte, a slice of scalar structs, maps of
// uint64 to uint64), so the garbage collector does not scan the ~30 MB of a
// full store, which it would do on the proxy's only core otherwise.
//
// Layout:
//   - data is a ring of bytes addressed by absolute offsets (offset %
//     len(data)). Each version of a document is one record there,
//     id|session|request|source, in the order they came; a record may wrap
//     around the end. It grows by half as needed, so small stores stay small.
//   - entries is a ring of one entry per record, by seq (seq %
//     len(entries)): where the record is, the hashes of its keys, and per
//     key the seq of the previous entry with the same hash, so the entries
//     of a key form a chain from the newest, which byID, bySession and
//     byRequest hold. A chain ends at a seq older than the oldest entry
//     kept; hashes may collide, so a walk compares the keys kept in data.
//   - Replace marks the version it replaces dead, and adds the new one with
//     the order of the old one: lookups sort by it, so the document keeps
//     its place. The dead record leaves with the others, from the front.
//   - Eviction drops the oldest entry, dead or not, and its record, while
//     the documents, their bytes, the entries or the records would be over
//     their caps.
//   - Chains are linked only when they are needed (link): by a lookup, by
//     Len, and by Replace, which must find the version it replaces. Entries
//     from linked up to next are in no chain yet. Most documents leave the
//     store before anything needs them linked and then never touch the maps,
//     which cost about ten map operations per document, most of the CPU
//     the store took. The first lookup after a quiet spell links the whole
//     store under the lock (7 ms for 50,000 documents,
//     BenchmarkMemoryStoreFirstLookup). An Add of an id kept already is
//     dropped when it is linked (the first version stays, as with
//     Elasticsearch's create); until then it takes a place under the caps.
//     Nothing in replaylink adds an id twice: enrich's ids are new, and it
//     replaces with Replace.
type Store struct {
	mu       sync.Mutex
	maxDocs  int
	maxBytes int64 // of the sources of live documents
	// The rings hold replaced versions too until they reach the front, and
	// data holds the ids and keys besides the sources: twice as many
	// entries as documents, one replaced version for each (a 5xx and its
	// traceback), and a quarter more bytes than the cap.
	maxEntries int
	maxData    int64

	data       []byte
	head, tail uint64 // absolute offsets of the oldest record and of the next one

	entries      []entry
	oldest, next uint64 // seqs of the oldest entry and of the next one; 1 and up, so 0 ends every chain
	linked       uint64 // entries from here up to next are in no chain yet
	idScratch    []byte // link's copy of an id that wraps around the end of data
	live         int    // entries not dead
	bytes        int64  // of their sources

	byID, bySession, byRequest map[uint64]uint64 // key hash -> seq of the newest entry

	seed     maphash.Seed
	hashMask uint64 // all ones; tests narrow it to make keys collide
}

// entry is one record of data.
type entry struct {
	off       uint64 // absolute offset of the record
	order     uint64 // lookups sort by it: the seq of the document's first version
	keyLen    [numKeys]uint32
	sourceLen uint32
	dead      bool // replaced
	hash      [numKeys]uint64
	prev      [numKeys]uint64 // seq of the previous entry with the same hash
}

func (e *entry) size() uint64 {
	return uint64(e.keyLen[keyID]) + uint64(e.keyLen[keySession]) + uint64(e.keyLen[keyRequest]) + uint64(e.sourceLen)
}

// indexed says whether the entry is in the chain of its key k: documents
// without a session or request are not found by an empty one.
func (e *entry) indexed(k int) bool { return k == keyID || e.keyLen[k] > 0 }

// keyOff returns the absolute offset of key k.
func (e *entry) keyOff(k int) uint64 {
	off := e.off
	for j := range k {
		off += uint64(e.keyLen[j])
	}
	return off
}

// New returns a store of at most maxDocs documents and maxBytes
// bytes of JSON, dropping the oldest first.
func New(maxDocs int, maxBytes int64) *Store {
	maxDocs = max(maxDocs, 1)
	maxData := maxBytes + maxBytes/4
	if maxData < maxBytes { // overflow
		maxData = math.MaxInt64
	}
	return &Store{
		maxDocs:    maxDocs,
		maxBytes:   maxBytes,
		maxEntries: 2 * maxDocs,
		maxData:    maxData,
		oldest:     1,
		next:       1,
		linked:     1,
		byID:       make(map[uint64]uint64),
		bySession:  make(map[uint64]uint64),
		byRequest:  make(map[uint64]uint64),
		seed:       maphash.MakeSeed(),
		hashMask:   math.MaxUint64,
	}
}

// Add keeps a copy of the document, unless one with the same id is kept:
// as Elasticsearch's create, the first version stays.
func (m *Store) Add(id, source []byte) { m.Keep(id, source, false, nil) }

// Replace keeps a copy of the document in place of the one with the same
// id, which keeps its place in the lookup order; or adds it, as Add. As
// Elasticsearch's index action, it wins over an Add before or after it, so
// lookups show one document, the newest version.
func (m *Store) Replace(id, source []byte) { m.Keep(id, source, true, nil) }

// Keys are a document's lookup keys: the strings of openReplaySession.id
// and http.request.id as its JSON decodes (nil when absent). enrich, which
// made the JSON, knows them; scanning the JSON for them was a third of what
// keeping a document cost.
type Keys struct{ Session, Request []byte }

// Keep is Add (replace false) or Replace. k gives the document's keys,
// which must be what its JSON holds; nil has them read from the JSON.
func (m *Store) Keep(id, source []byte, replace bool, k *Keys) {
	if m == nil {
		return
	}
	if k != nil {
		m.put([numKeys][]byte{keyID: id, keySession: k.Session, keyRequest: k.Request}, source, replace)
		return
	}
	ks := keyScanners.Get().(*keyScanner)
	keys := ks.scan(id, source)
	keyScanners.Put(ks)
	m.put(keys, source, replace)
}

func (m *Store) put(keys [numKeys][]byte, source []byte, replace bool) {
	if m == nil {
		return
	}
	id := keys[keyID]
	size := int64(len(source))
	for _, key := range keys {
		size += int64(len(key))
	}
	if int64(len(source)) > m.maxBytes || size > m.maxData || size > math.MaxUint32 {
		return
	}
	var hash [numKeys]uint64
	for k, key := range keys {
		hash[k] = m.hash(key)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	order := m.next
	if replace {
		m.link()
		if seq, ok := m.find(keyID, hash[keyID], id); ok {
			order = m.entry(seq).order
			m.kill(seq)
		}
	}
	m.makeRoom(int64(len(source)), size)

	seq := m.next
	m.next++
	e := m.entry(seq)
	*e = entry{off: m.tail, order: order, sourceLen: uint32(len(source)), hash: hash}
	for k, key := range keys {
		e.keyLen[k] = uint32(len(key))
		m.write(m.tail, key)
		m.tail += uint64(len(key))
	}
	m.write(m.tail, source)
	m.tail += uint64(len(source))
	m.live++
	m.bytes += int64(len(source))
}

// keyScanner holds the callback Keep passes jsonscan.Fields, made once: a
// closure made per document would escape into Fields, an allocation.
type keyScanner struct {
	keys  [numKeys][]byte
	found func(i int, value []byte)
}

var keyScanners = sync.Pool{New: func() any {
	ks := new(keyScanner)
	ks.found = func(i int, v []byte) { ks.keys[keySession+i] = v }
	return ks
}}

// scan returns the keys of a document; the scanner keeps none of them.
func (ks *keyScanner) scan(id, source []byte) [numKeys][]byte {
	ks.keys = [numKeys][]byte{keyID: id}
	jsonscan.Fields(source, storedFields, ks.found)
	keys := ks.keys
	ks.keys = [numKeys][]byte{}
	return keys
}

func (m *Store) hash(key []byte) uint64 { return maphash.Bytes(m.seed, key) & m.hashMask }

func (m *Store) heads(k int) map[uint64]uint64 {
	switch k {
	case keyID:
		return m.byID
	case keySession:
		return m.bySession
	}
	return m.byRequest
}

func (m *Store) entry(seq uint64) *entry { return &m.entries[seq%uint64(len(m.entries))] }

// chain makes the entry of seq the newest of the chain of its key k.
func (m *Store) chain(k int, seq uint64, e *entry) {
	if e.indexed(k) {
		heads := m.heads(k)
		e.prev[k] = heads[e.hash[k]] // 0 if none
		heads[e.hash[k]] = seq
	}
}

// link puts the entries added since it last ran in their chains, oldest
// first, so each chain stays newest first, and drops those whose id is kept
// already.
func (m *Store) link() {
	for seq := max(m.linked, m.oldest); seq < m.next; seq++ {
		e := m.entry(seq)
		first, second := m.parts(e.off, e.keyLen[keyID])
		id := first
		if len(second) > 0 {
			m.idScratch = append(append(m.idScratch[:0], first...), second...)
			id = m.idScratch
		}
		if _, dup := m.find(keyID, e.hash[keyID], id); dup {
			e.dead = true
			m.live--
			m.bytes -= int64(e.sourceLen)
			continue
		}
		for k := range numKeys {
			m.chain(k, seq, e)
		}
	}
	m.linked = m.next
}

// find returns the seq of the live entry whose key k is key.
func (m *Store) find(k int, hash uint64, key []byte) (uint64, bool) {
	for seq := m.heads(k)[hash]; seq >= m.oldest; {
		e := m.entry(seq)
		if !e.dead && m.equal(e, k, key) {
			return seq, true
		}
		seq = e.prev[k]
	}
	return 0, false
}

// kill marks the entry of seq, which is linked, replaced, and takes it off
// the heads of its chains: lookups of a session or request it left should
// not walk to it.
func (m *Store) kill(seq uint64) {
	e := m.entry(seq)
	e.dead = true
	m.live--
	m.bytes -= int64(e.sourceLen)
	for k := range numKeys {
		heads := m.heads(k)
		if !e.indexed(k) || heads[e.hash[k]] != seq {
			continue
		}
		if e.prev[k] >= m.oldest {
			heads[e.hash[k]] = e.prev[k]
		} else {
			delete(heads, e.hash[k])
		}
	}
}

// makeRoom evicts the oldest entries until a document of sourceLen bytes,
// size with its keys, fits under every cap, and grows the rings for it.
func (m *Store) makeRoom(sourceLen, size int64) {
	for m.next > m.oldest && (m.live >= m.maxDocs || m.bytes+sourceLen > m.maxBytes ||
		m.next-m.oldest >= uint64(m.maxEntries) || int64(m.tail-m.head)+size > m.maxData) {
		m.evictOldest()
	}
	if n := m.next - m.oldest; n == uint64(len(m.entries)) {
		entries := make([]entry, min(max(2*n, 1024), uint64(m.maxEntries)))
		for seq := m.oldest; seq < m.next; seq++ {
			entries[seq%uint64(len(entries))] = *m.entry(seq)
			if (seq-m.oldest)%growSlice == growSlice-1 {
				runtime.Gosched()
			}
		}
		m.entries = entries
	}
	if used := int64(m.tail - m.head); used+size > int64(len(m.data)) {
		old := m.data
		m.data = make([]byte, min(max(int64(len(old))*3/2, minData, used+size), m.maxData))
		for off := m.head; off < m.tail; {
			p := off % uint64(len(old))
			part := old[p:min(uint64(len(old)), p+m.tail-off, p+growSlice<<8)]
			m.write(off, part)
			off += uint64(len(part))
			runtime.Gosched()
		}
	}
}

func (m *Store) evictOldest() {
	e := m.entry(m.oldest)
	for k := range numKeys {
		// Entries leave oldest first: when the oldest is the newest of
		// its chain, it is the last one.
		if heads := m.heads(k); e.indexed(k) && m.oldest < m.linked && heads[e.hash[k]] == m.oldest {
			delete(heads, e.hash[k])
		}
	}
	if !e.dead {
		m.live--
		m.bytes -= int64(e.sourceLen)
	}
	m.head = e.off + e.size()
	m.oldest++
}

// write copies b to data at the absolute offset off; it fits.
func (m *Store) write(off uint64, b []byte) {
	if len(b) == 0 { // data may be empty still
		return
	}
	n := copy(m.data[off%uint64(len(m.data)):], b)
	copy(m.data, b[n:])
}

// parts returns the n bytes of data at the absolute offset off, in two
// parts when they wrap around its end.
func (m *Store) parts(off uint64, n uint32) (first, second []byte) {
	if n == 0 { // data may be empty still
		return nil, nil
	}
	p := off % uint64(len(m.data))
	end := min(p+uint64(n), uint64(len(m.data)))
	return m.data[p:end], m.data[:uint64(n)-(end-p)]
}

// equal says whether key k of the entry is key. Hashes collide, and one key
// may start with another ("r2", "r243").
func (m *Store) equal(e *entry, k int, key []byte) bool {
	if int(e.keyLen[k]) != len(key) {
		return false
	}
	first, second := m.parts(e.keyOff(k), uint32(len(key)))
	return string(first) == string(key[:len(first)]) && string(second) == string(key[len(first):])
}

// Session returns the kept documents of an OpenReplay session (by the
// openReplaySession.id field), oldest first.
func (m *Store) Session(id string) []Document { return m.lookup(keySession, id) }

// Request returns the kept documents of one request (by http.request.id),
// oldest first.
func (m *Store) Request(requestID string) []Document { return m.lookup(keyRequest, requestID) }

// Len returns the number of documents kept.
func (m *Store) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.link()
	return m.live
}

// lookup copies out the live documents whose key k is key, in their order:
// the ids into one string, the sources into one slice.
func (m *Store) lookup(k int, key string) []Document {
	if m == nil || key == "" {
		return nil
	}
	b := []byte(key)
	hash := m.hash(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.link()
	var buf [64]uint64
	seqs := buf[:0]
	idLen, sourceLen := 0, 0
	for seq := m.heads(k)[hash]; seq >= m.oldest; {
		e := m.entry(seq)
		if !e.dead && m.equal(e, k, b) {
			seqs = append(seqs, seq)
			idLen += int(e.keyLen[keyID])
			sourceLen += int(e.sourceLen)
		}
		seq = e.prev[k]
	}
	if len(seqs) == 0 {
		return nil
	}
	slices.Reverse(seqs) // oldest first, in order unless a replacement moved
	slices.SortFunc(seqs, func(a, b uint64) int { return cmp.Compare(m.entry(a).order, m.entry(b).order) })

	var ids strings.Builder
	ids.Grow(idLen)
	sources := make([]byte, 0, sourceLen)
	for _, seq := range seqs {
		e := m.entry(seq)
		first, second := m.parts(e.off, e.keyLen[keyID])
		ids.Write(first)
		ids.Write(second)
		first, second = m.parts(e.off+e.size()-uint64(e.sourceLen), e.sourceLen)
		sources = append(append(sources, first...), second...)
	}
	docs := make([]Document, len(seqs))
	allIDs := ids.String()
	for i, seq := range seqs {
		e := m.entry(seq)
		n, s := int(e.keyLen[keyID]), int(e.sourceLen)
		docs[i] = Document{ID: allIDs[:n], Source: sources[:s:s]}
		allIDs, sources = allIDs[n:], sources[s:]
	}
	return docs
}
