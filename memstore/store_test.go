package memstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func storeDoc(session, request string, n int) (id, src []byte) {
	return fmt.Appendf(nil, "id-%d", n), fmt.Appendf(nil, `{"message":"m%d","openReplaySession":{"id":%q},"http":{"request":{"id":%q}}}`, n, session, request)
}

func ids(docs []Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.ID)
	}
	return out
}

func TestMemoryStore(t *testing.T) {
	m := New(4, 1<<20)
	for i, s := range []string{"1", "2", "1", "1", "2", "1"} {
		m.Add(storeDoc(s, fmt.Sprint("r", i), i))
	}
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-2", "id-3", "id-5"}) {
		t.Fatalf("Session(1) = %v (ids 0 and 1 are evicted, 4 is session 2)", got)
	}
	if got := ids(m.Request("r4")); !reflect.DeepEqual(got, []string{"id-4"}) {
		t.Fatalf("Request(r4) = %v", got)
	}
	if got := m.Request("r0"); len(got) != 0 {
		t.Fatalf("evicted document still found: %v", ids(got))
	}
	// Same id: the first version stays. Until the store links it the
	// duplicate takes a place under the cap, so the oldest (id-2) leaves.
	m.Add(storeDoc("1", "r9", 5))
	if got := ids(m.Session("1")); m.Len() != 3 || !reflect.DeepEqual(got, []string{"id-3", "id-5"}) || len(m.Request("r9")) != 0 {
		t.Fatalf("after a duplicate id: len %d, Session(1) = %v", m.Len(), got)
	}
	if len(m.bySession) != 2 || len(m.byID) != 3 {
		t.Fatalf("indexes leak: %d sessions, %d ids", len(m.bySession), len(m.byID))
	}
	var nilStore *Store
	if nilStore.Session("1") != nil || nilStore.Len() != 0 {
		t.Fatal("nil store is not empty")
	}
}

func TestMemoryStoreByteCap(t *testing.T) {
	_, one := storeDoc("1", "r", 0)
	m := New(100, int64(3*len(one)))
	for i := range 10 {
		m.Add(storeDoc("1", "r", i))
	}
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-7", "id-8", "id-9"}) {
		t.Fatalf("Session(1) = %v, want the 3 newest", got)
	}
	m.Add([]byte("huge"), make([]byte, 4*len(one)))
	if m.Len() != 3 {
		t.Fatal("a document larger than the cap was kept")
	}
}

func TestMemoryStoreReplace(t *testing.T) {
	m := New(10, 1<<20)
	for i := range 3 {
		m.Add(storeDoc("1", fmt.Sprint("r", i), i))
	}
	// In place: the replacement keeps the original's place in the order.
	m.Replace([]byte("id-1"), []byte(`{"openReplaySession":{"id":"1"},"http":{"request":{"id":"r1"}},"v":2}`))
	docs := m.Session("1")
	if got := ids(docs); !reflect.DeepEqual(got, []string{"id-0", "id-1", "id-2"}) || !strings.Contains(string(docs[1].Source), `"v":2`) {
		t.Fatalf("after Replace: %v, id-1 = %s", got, docs[1].Source)
	}
	// An Add of the same id after the replacement changes nothing.
	m.Add(storeDoc("1", "r1", 1))
	if d := m.Request("r1"); len(d) != 1 || !strings.Contains(string(d[0].Source), `"v":2`) {
		t.Fatalf("Add after Replace: %v", d)
	}
	// A replacement naming another session and request moves between them.
	m.Replace([]byte("id-0"), []byte(`{"openReplaySession":{"id":"2"},"http":{"request":{"id":"rx"}}}`))
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-1", "id-2"}) {
		t.Fatalf("Session(1) = %v", got)
	}
	if got := ids(m.Session("2")); !reflect.DeepEqual(got, []string{"id-0"}) || len(m.Request("r0")) != 0 || len(m.Request("rx")) != 1 {
		t.Fatalf("Session(2) = %v, r0 %v, rx %v", got, m.Request("r0"), m.Request("rx"))
	}
	// Replacing an id never seen adds it; eviction keeps the indexes right.
	m.Replace(storeDoc("2", "r9", 9))
	if m.Len() != 4 || len(m.byID) != 4 {
		t.Fatalf("len %d, ids %d", m.Len(), len(m.byID))
	}
	for i := 10; i < 20; i++ {
		m.Add(storeDoc("3", fmt.Sprint("r", i), i))
	}
	if len(m.bySession) != 0 || len(m.byRequest) != 0 {
		t.Fatalf("documents nobody looked up are in the session or request index: %d sessions, %d requests", len(m.bySession), len(m.byRequest))
	}
	if got := len(m.Session("3")); got != 10 {
		t.Fatalf("Session(3) = %d documents", got)
	}
	if len(m.bySession) != 1 || len(m.byRequest) != 10 || m.Len() != 10 {
		t.Fatalf("indexes leak after eviction: %d sessions, %d requests, %d docs", len(m.bySession), len(m.byRequest), m.Len())
	}
}

func TestMemoryStoreReplaceOverTheByteCap(t *testing.T) {
	_, one := storeDoc("1", "r", 0)
	m := New(100, int64(3*len(one)))
	for i := range 3 {
		m.Add(storeDoc("1", "r", i))
	}
	big := append(bytes.Repeat([]byte(" "), 2*len(one)), one...) // the whole cap
	m.Replace([]byte("id-2"), big)
	if got := ids(m.Session("1")); !reflect.DeepEqual(got, []string{"id-2"}) || m.bytes != int64(len(big)) {
		t.Fatalf("Session(1) = %v, %d bytes: the oldest should go to make room", got, m.bytes)
	}
}

// stored is a document added to a store in a test.
type stored struct {
	id, request string
	source      []byte
}

// addSized adds a document of session and request id request, padded to
// size bytes, and returns it.
func addSized(m *Store, n int, session string, size int) stored {
	d := stored{id: fmt.Sprint("id-", n), request: fmt.Sprint("r", n)}
	d.source = fmt.Appendf(nil, `{"openReplaySession":{"id":%q},"http":{"request":{"id":%q}},"pad":""}`, session, d.request)
	pad := bytes.Repeat([]byte("x"), max(0, size-len(d.source)))
	d.source = slices.Insert(d.source, len(d.source)-2, pad...)
	m.Add([]byte(d.id), d.source)
	return d
}

// checkNewest checks the store holds the newest m.Len() of docs, each
// found by its request id with its source, and none of the others.
func checkNewest(t *testing.T, m *Store, docs []stored) {
	t.Helper()
	kept := len(docs) - m.Len()
	for i, d := range docs {
		got := m.Request(d.request)
		switch {
		case i < kept && len(got) != 0:
			t.Fatalf("evicted %s found: %v", d.id, ids(got))
		case i >= kept && (len(got) != 1 || got[0].ID != d.id || !bytes.Equal(got[0].Source, d.source)):
			t.Fatalf("Request(%s) = %v, want %s: %.80q", d.request, ids(got), d.id, got)
		}
	}
}

// wraps says whether a kept record runs across the end of the byte ring.
func wraps(m *Store) bool {
	for seq := m.oldest; seq < m.next; seq++ {
		e := m.entry(seq)
		if e.off%uint64(len(m.data))+e.size() > uint64(len(m.data)) {
			return true
		}
	}
	return false
}

func TestMemoryStoreRecordsWrap(t *testing.T) {
	m := New(1000, 4000) // a ring of 5000 bytes
	var docs []stored
	wrapped := false
	for n := range 200 {
		docs = append(docs, addSized(m, n, fmt.Sprint("s", n%3), 150+n%7*17))
		wrapped = wrapped || wraps(m)
		if n%25 == 0 {
			checkNewest(t, m, docs)
		}
	}
	if !wrapped || len(m.data) != 5000 {
		t.Fatalf("no record wrapped around the ring of %d bytes", len(m.data))
	}
	checkNewest(t, m, docs)
	if m.bytes > 4000 || m.bytes+int64(len(docs[len(docs)-m.Len()-1].source)) <= 4000 {
		t.Fatalf("%d documents of %d bytes: the byte cap should bind", m.Len(), m.bytes)
	}
	var want []string
	for _, d := range docs[len(docs)-m.Len():] {
		if bytes.Contains(d.source, []byte(`"s1"`)) {
			want = append(want, d.id)
		}
	}
	if got := ids(m.Session("s1")); !reflect.DeepEqual(got, want) {
		t.Fatalf("Session(s1) = %v, want %v", got, want)
	}
}

func TestMemoryStoreGrows(t *testing.T) {
	m := New(100, 64<<20)
	var docs []stored
	for n := range 1200 { // 1.2 MB through the first ring, 100 KB kept
		docs = append(docs, addSized(m, n, "s", 1000))
	}
	if len(m.data) != minData || m.tail < minData {
		t.Fatalf("ring of %d bytes, written to %d: want the first ring wrapped", len(m.data), m.tail)
	}
	for n := 1200; n < 1300; n++ { // then 2 MB kept, growing a wrapped ring
		docs = append(docs, addSized(m, n, "s", 20_000))
		if n == 1250 {
			checkNewest(t, m, docs)
		}
	}
	if len(m.data) <= minData || m.Len() != 100 {
		t.Fatalf("ring of %d bytes for %d documents", len(m.data), m.Len())
	}
	checkNewest(t, m, docs)
}

// TestMemoryStoreKeysCount: ids and keys are kept beside the sources, in
// a quarter more bytes than the cap; long ones evict sooner.
func TestMemoryStoreKeysCount(t *testing.T) {
	m := New(100, 1000) // a ring of 1250 bytes
	var docs []stored
	for n := range 10 {
		d := stored{id: fmt.Sprintf("%0300d", n), request: fmt.Sprint("r", n), source: fmt.Appendf(nil, `{"http":{"request":{"id":"r%d"}}}`, n)}
		m.Add([]byte(d.id), d.source)
		docs = append(docs, d)
	}
	if record := len(docs[0].id) + len("r0") + len(docs[0].source); m.Len() != 1250/record {
		t.Fatalf("%d documents of %d bytes each kept, want %d", m.Len(), record, 1250/record)
	}
	checkNewest(t, m, docs)
}

// TestMemoryStoreReplacedVersions: a replaced version keeps its entry and
// bytes until it reaches the front, and the caps count documents.
func TestMemoryStoreReplacedVersions(t *testing.T) {
	m := New(3, 1<<20)
	for i, s := range []string{"a", "b", "c"} {
		m.Add(storeDoc("1", s, i))
	}
	for i, s := range []string{"a", "b", "c"} {
		m.Replace(fmt.Appendf(nil, "id-%d", i), fmt.Appendf(nil, `{"openReplaySession":{"id":"1"},"http":{"request":{"id":%q}},"v":2}`, s))
	}
	docs := m.Session("1")
	if got := ids(docs); m.Len() != 3 || !reflect.DeepEqual(got, []string{"id-0", "id-1", "id-2"}) {
		t.Fatalf("Session(1) = %v, len %d", got, m.Len())
	}
	for _, d := range docs {
		if !bytes.Contains(d.Source, []byte(`"v":2`)) {
			t.Fatalf("%s: %s, want the replacement", d.ID, d.Source)
		}
	}
	m.Add(storeDoc("1", "d", 3))
	if got := ids(m.Session("1")); m.Len() != 3 || !reflect.DeepEqual(got, []string{"id-1", "id-2", "id-3"}) || m.next-m.oldest != 3 {
		t.Fatalf("Session(1) = %v, %d entries: the oldest document and the replaced versions before it go", got, m.next-m.oldest)
	}
	// Replaced again and again, a document evicts the others sooner: the
	// entries are at most twice the documents.
	for v := range 10 {
		m.Replace([]byte("id-3"), fmt.Appendf(nil, `{"openReplaySession":{"id":"1"},"v":%d}`, v))
	}
	docs = m.Session("1")
	if n := len(docs); n == 0 || n != m.Len() || docs[n-1].ID != "id-3" || !bytes.HasSuffix(docs[n-1].Source, []byte(`"v":9}`)) || m.next-m.oldest > 6 {
		t.Fatalf("Session(1) = %q, %d entries", docs, m.next-m.oldest)
	}
}

func TestMemoryStoreReplaceEvicted(t *testing.T) {
	m := New(3, 1<<20)
	for i := range 4 {
		m.Add(storeDoc("1", fmt.Sprint("r", i), i))
	}
	m.Replace([]byte("id-0"), []byte(`{"openReplaySession":{"id":"1"},"v":2}`))
	docs := m.Session("1")
	if got := ids(docs); !reflect.DeepEqual(got, []string{"id-2", "id-3", "id-0"}) || !bytes.Contains(docs[2].Source, []byte(`"v":2`)) {
		t.Fatalf("Session(1) = %v: id-0 was evicted, its replacement is new", got)
	}
	if m.Len() != 3 || len(m.byID) != 3 || len(m.byRequest) != 2 {
		t.Fatalf("len %d, %d ids, %d requests", m.Len(), len(m.byID), len(m.byRequest))
	}
}

func TestMemoryStoreReplaceMovesKeys(t *testing.T) {
	m := New(10, 1<<20)
	m.Add(storeDoc("a", "ra", 0))
	m.Add(storeDoc("b", "rb", 1))
	m.Add(storeDoc("b", "rc", 2))
	m.Replace([]byte("id-0"), []byte(`{"openReplaySession":{"id":"b"},"http":{"request":{"id":"rd"}}}`))
	if got := ids(m.Session("b")); !reflect.DeepEqual(got, []string{"id-0", "id-1", "id-2"}) {
		t.Fatalf("Session(b) = %v, want id-0 in its old place", got)
	}
	if len(m.Session("a")) != 0 || len(m.Request("ra")) != 0 || len(m.Request("rd")) != 1 {
		t.Fatal("the replaced version is still found by its keys, or the new one not")
	}
	if len(m.bySession) != 1 || len(m.byRequest) != 3 {
		t.Fatalf("%d sessions, %d requests: the keys only the replaced version had should go", len(m.bySession), len(m.byRequest))
	}
	// The newest of a session leaves it: the older ones are still found.
	m.Replace([]byte("id-0"), []byte(`{"openReplaySession":{"id":"c"}}`))
	if got := ids(m.Session("b")); !reflect.DeepEqual(got, []string{"id-1", "id-2"}) || len(m.Session("c")) != 1 || len(m.Request("rd")) != 0 {
		t.Fatalf("Session(b) = %v", got)
	}
	// A replacement without keys is found by none.
	m.Replace([]byte("id-1"), []byte(`{"message":"no keys"}`))
	if got := ids(m.Session("b")); !reflect.DeepEqual(got, []string{"id-2"}) || len(m.Request("rb")) != 0 || m.Len() != 3 {
		t.Fatalf("Session(b) = %v", got)
	}
}

// TestMemoryStoreLinksWhenLookedUp: the chains are linked when a lookup,
// Len or Replace needs them, so when that happens must not change what
// lookups find. One store is looked up after every operation, the other only
// at the end, over adds, replacements (of linked and unlinked documents,
// moving keys or dropping them) and evictions. (An Add of an id kept already
// takes a place until it is linked, so it is left to TestMemoryStore.)
func TestMemoryStoreLinksWhenLookedUp(t *testing.T) {
	eager, lazy := New(40, 1<<20), New(40, 1<<20)
	eager.hashMask, lazy.hashMask = 7, 7 // chains shared by several keys
	sessions := []string{"s0", "s1", "s2", "s3", "s4"}
	everything := func(m *Store) [][]string {
		var out [][]string
		for i := range 300 {
			out = append(out, ids(m.Request(fmt.Sprint("r", i))))
		}
		for _, s := range sessions {
			out = append(out, ids(m.Session(s)))
		}
		return out
	}
	state := uint64(1)
	next := func(n int) int { state = state*6364136223846793005 + 1442695040888963407; return int(state>>33) % n }
	for i := range 300 {
		var id, src []byte
		op := next(10)
		switch {
		case op < 6: // a new document
			id, src = storeDoc(sessions[next(5)], fmt.Sprint("r", i), i)
		case op < 9: // a newer version of a recent one, perhaps under other keys
			n := max(i-next(50), 0)
			id, src = storeDoc(sessions[next(5)], fmt.Sprint("r", n+next(2)), n)
		default: // keys dropped
			id, src = fmt.Appendf(nil, "id-%d", max(i-next(20), 0)), []byte(`{"message":"no keys"}`)
		}
		replace := op >= 6 || next(3) > 0
		for _, m := range []*Store{eager, lazy} {
			if replace {
				m.Replace(id, src)
			} else {
				m.Add(id, src)
			}
		}
		if i%7 == 0 {
			lazy.Session(sessions[0]) // links now and then too
		}
		everything(eager)
	}
	if got, want := everything(lazy), everything(eager); !reflect.DeepEqual(got, want) {
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("lookup %d: looked up at the end %v, all along %v", i, got[i], want[i])
			}
		}
	}
	if eager.Len() != lazy.Len() {
		t.Fatalf("len %d, %d", eager.Len(), lazy.Len())
	}
	for _, m := range []*Store{eager, lazy} {
		// A chain's head may be a replaced version until it leaves, but
		// never one that left.
		if n := int(m.next - m.oldest); len(m.byID) > n || len(m.bySession) > n || len(m.byRequest) > n {
			t.Fatalf("%d entries, %d ids, %d sessions, %d requests", n, len(m.byID), len(m.bySession), len(m.byRequest))
		}
	}
}

// TestMemoryStoreHashCollisions narrows the hashes to one bit: every key
// shares its chain with half the others.
func TestMemoryStoreHashCollisions(t *testing.T) {
	for _, mask := range []uint64{0, 1} {
		m := New(20, 1<<20)
		m.hashMask = mask
		for i := range 50 {
			m.Add(storeDoc(fmt.Sprint("s", i%4), fmt.Sprint("r", i), i))
			m.Add(storeDoc("dup", "dup", i)) // same id: dropped when linked
			if m.Len() > 20 {
				t.Fatalf("mask %d: len %d", mask, m.Len())
			}
		}
		m.Replace([]byte("id-45"), []byte(`{"openReplaySession":{"id":"s1"},"http":{"request":{"id":"r45"}},"v":2}`))
		m.Add([]byte("id-45"), []byte(`{"openReplaySession":{"id":"s1"},"http":{"request":{"id":"r45"}},"v":3}`))
		if got := ids(m.Session("s1")); !reflect.DeepEqual(got, []string{"id-33", "id-37", "id-41", "id-45", "id-49"}) {
			t.Fatalf("mask %d: Session(s1) = %v", mask, got)
		}
		if d := m.Request("r45"); len(d) != 1 || !bytes.Contains(d[0].Source, []byte(`"v":2`)) {
			t.Fatalf("mask %d: Request(r45) = %q", mask, d)
		}
		// The last Add of id-45, a duplicate, took id-30's place before it
		// was dropped.
		if len(m.Request("r30")) != 0 || len(m.Request("r31")) != 1 || m.Len() != 19 {
			t.Fatalf("mask %d: len %d", mask, m.Len())
		}
		if len(m.byID) > 2 || len(m.bySession) > 2 || len(m.byRequest) > 2 {
			t.Fatalf("mask %d: %d ids, %d sessions, %d requests", mask, len(m.byID), len(m.bySession), len(m.byRequest))
		}
	}
}

// TestMemoryStoreOwnsItsCopies: the store copies what it is given, and
// lookups return copies, since the ring is overwritten later.
func TestMemoryStoreOwnsItsCopies(t *testing.T) {
	m := New(10, 1<<20)
	id, src := storeDoc("1", "r", 0)
	want := string(src)
	m.Add(id, src)
	clear(id)
	clear(src)
	docs := m.Session("1")
	if len(docs) != 1 || docs[0].ID != "id-0" || string(docs[0].Source) != want {
		t.Fatalf("after the caller reused its slices: %q", docs)
	}
	docs[0].Source[0] = 'X'
	docs[0].Source = append(docs[0].Source, "more"...)
	if d := m.Session("1"); string(d[0].Source) != want {
		t.Fatalf("after the caller changed what it got: %q", d[0].Source)
	}
}

// TestMemoryStoreConcurrent adds, replaces and looks up from several
// goroutines over a small ring (run it with -race); every document found
// must be whole.
func TestMemoryStoreConcurrent(t *testing.T) {
	m := New(300, 100_000)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 2000 {
				n := w*10_000 + i
				id, src := storeDoc(fmt.Sprint("s", n%5), fmt.Sprint("r", n), n)
				if i%10 == 9 {
					m.Replace(id, append(src[:len(src)-1:len(src)-1], `,"v":2}`...))
				} else {
					m.Add(id, src)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := range 2000 {
				for _, d := range m.Session(fmt.Sprint("s", i%5)) {
					var doc struct{ Message string }
					if err := json.Unmarshal(d.Source, &doc); err != nil || "id-"+doc.Message[1:] != d.ID {
						t.Errorf("%s: %s (%v)", d.ID, d.Source, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if m.Len() != 300 || len(m.byID) != 300 {
		t.Fatalf("len %d, %d ids", m.Len(), len(m.byID))
	}
}
