package spool

import (
	"bytes"
	"testing"
	"time"
)

var benchSource = append(append([]byte(`{"@timestamp":"2024-05-01T12:00:00.000Z","level":"error","message":"[openReplaySession.id=123456789] GET /api/cart -> 500 (12.4 ms) `),
	bytes.Repeat([]byte("x"), 800)...), `"}`...)

// benchID is the _id of every benchmark document (32 bytes, as enrich's).
var benchID = []byte("0123456789abcdef0123456789abcdef")

// openBenchQueue opens a queue of maxBytes in a fresh directory, closed when
// the benchmark ends.
func openBenchQueue(b *testing.B, maxBytes int64) *Queue {
	q, err := Open(Options{Dir: b.TempDir(), MaxBytes: maxBytes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

func BenchmarkAppend(b *testing.B) {
	q := openBenchQueue(b, 256<<20)
	id := benchID
	now := time.Now()
	b.SetBytes(int64(len(benchSource)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := q.Append(OpCreate, id, benchSource, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	q := openBenchQueue(b, 1<<30)
	id := benchID
	for range 20000 {
		if err := q.Append(OpCreate, id, benchSource, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	r := q.Reader()
	b.SetBytes(int64(len(benchSource)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, ok, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if !ok { // wrap around: read the same records again
			r.closeSegment()
			r.pos = Position{}
		}
	}
}

func BenchmarkEncodeRecord(b *testing.B) {
	id := []byte("0123456789abcdef0123456789abcdef")
	buf := make([]byte, 0, 4096)
	now := time.Now()
	b.SetBytes(int64(len(benchSource)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = encodeRecord(buf[:0], OpCreate, id, benchSource, now)
	}
}

// BenchmarkAppendBatch is BenchmarkAppend's documents in rounds of 64, as
// enrich's worker hands them over under load: per document.
func BenchmarkAppendBatch(b *testing.B) {
	q := openBenchQueue(b, 256<<20)
	id := benchID
	now := time.Now()
	batch := q.NewBatch()
	b.SetBytes(int64(len(benchSource)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := batch.Add(OpCreate, id, benchSource, now); err != nil {
			b.Fatal(err)
		}
		if batch.Len() == 64 {
			if _, err := q.AppendBatch(batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
}
