package memstore

import (
	"bytes"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// accessDocs writes the id and source of access document n into id and
// src, which keep their length: the benchmarks make a new document per
// iteration without allocating. Sessions have 20 requests each.
type accessDocs struct {
	id, src        []byte
	session, reqID []byte // the digits of the session and request ids in src
}

// benchTime is the documents' timestamp, fixed so that every run measures
// the same bytes (ship's benchmarks use the same).
var benchTime = time.Unix(1714564800, 0)

func newAccessDocs() *accessDocs {
	ts := benchTime.UTC().Format("2006-01-02T15:04:05.000Z")
	src := []byte(`{"@timestamp":"` + ts + `","utc_time":"` + ts + `","message":"GET /api/items/17 -> 200 (1.2 ms)",` +
		`"level":"info","tags":["access"],"openReplaySession":{"id":"0000000000","source":"header"},` +
		`"http":{"request":{"id":"req-000000000000","method":"GET"},"response":{"status_code":200}},` +
		`"event":{"duration":1200000,"dataset":"replaylink.access"},"url":{"path":"/api/items/17"}}`)
	d := &accessDocs{id: []byte("doc-000000000000"), src: src}
	d.session = digitsAfter(src, `"openReplaySession":{"id":"`, 10)
	d.reqID = digitsAfter(src, `"request":{"id":"req-`, 12)
	return d
}

func digitsAfter(src []byte, prefix string, n int) []byte {
	i := bytes.Index(src, []byte(prefix)) + len(prefix)
	return src[i : i+n]
}

// next sets the documents to number n.
func (d *accessDocs) next(n int) {
	putDigits(d.id[len("doc-"):], n)
	putDigits(d.reqID, n)
	putDigits(d.session, n/20)
}

func putDigits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// BenchmarkMemoryStoreAdd adds access documents (~400 bytes) to a store
// of the default size that is full already, so every Add evicts.
//
// keys=scanned is Add (the store scans the JSON for the session and request
// id); keys=given passes them, as ship does with enrich's documents.
func BenchmarkMemoryStoreAdd(b *testing.B) {
	for _, given := range []bool{false, true} {
		b.Run(map[bool]string{false: "keys=scanned", true: "keys=given"}[given], func(b *testing.B) {
			m := New(50_000, 64<<20)
			d := newAccessDocs()
			request := make([]byte, len("req-")+len(d.reqID))
			add := func() {
				if !given {
					m.Add(d.id, d.src)
					return
				}
				request = append(append(request[:0], "req-"...), d.reqID...)
				m.Keep(d.id, d.src, false, &Keys{Session: d.session, Request: request})
			}
			n := 0
			for ; n < 50_000; n++ {
				d.next(n)
				add()
			}
			b.SetBytes(int64(len(d.src)))
			b.ReportAllocs()
			for b.Loop() {
				d.next(n)
				add()
				n++
			}
		})
	}
}

// BenchmarkMemoryStoreSession looks up a session of 20 documents in a
// full store.
func BenchmarkMemoryStoreSession(b *testing.B) {
	m := New(50_000, 64<<20)
	d := newAccessDocs()
	for n := range 50_000 {
		d.next(n)
		m.Add(d.id, d.src)
	}
	d.next(30_000)
	session := string(d.session)
	b.ReportAllocs()
	for b.Loop() {
		if docs := m.Session(session); len(docs) != 20 {
			b.Fatalf("%d documents", len(docs))
		}
	}
}

// BenchmarkMemoryStoreFirstLookup is a lookup in a full store that nothing
// has linked yet (the first lookup after a quiet spell): it links every
// entry, under the lock Add waits for. One op is that one lookup.
func BenchmarkMemoryStoreFirstLookup(b *testing.B) {
	m := New(50_000, 64<<20)
	d := newAccessDocs()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range 50_000 {
			d.next(n)
			m.Add(d.id, d.src)
			n++
		}
		session := string(d.session)
		b.StartTimer()
		if docs := m.Session(session); len(docs) == 0 {
			b.Fatal("no documents")
		}
	}
}

// BenchmarkMemoryStoreHeap fills a store of the default size and reports
// its live heap, and the CPU time of a garbage collection with the store
// live and no garbage: the marking the proxy pays on its only core.
func BenchmarkMemoryStoreHeap(b *testing.B) {
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	var heap uint64
	var gc float64
	runs := 0
	d := newAccessDocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := New(50_000, 64<<20)
		for n := range 50_000 {
			d.next(n)
			m.Add(d.id, d.src)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		metrics.Read(gcCPU)
		start := gcCPU[0].Value.Float64()
		runtime.GC()
		metrics.Read(gcCPU)
		gc += gcCPU[0].Value.Float64() - start
		heap += after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(m)
		runs++
	}
	b.ReportMetric(float64(heap)/float64(runs), "live-B")
	b.ReportMetric(gc*1e9/float64(runs), "gc-cpu-ns")
}
