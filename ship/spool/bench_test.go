package spool

import (
	"bytes"
	"testing"
	"time"
)

var benchSource = append(append([]byte(`{"@timestamp":"2024-05-01T12:00:00.000Z","level":"error","message":"[openReplaySession.id=123456789] GET /api/cart -> 500 (12.4 ms) `),
	bytes.Repeat([]byte("x"), 800)...), `"}`...)

func BenchmarkAppend(b *testing.B) {
	q, err := Open(Options{Dir: b.TempDir(), MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	id := []byte("0123456789abcdef0123456789abcdef")
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
	q, err := Open(Options{Dir: b.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	id := []byte("0123456789abcdef0123456789abcdef")
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
	q, err := Open(Options{Dir: b.TempDir(), MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	id := []byte("0123456789abcdef0123456789abcdef")
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
