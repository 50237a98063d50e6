package spool

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func batchOf(t *testing.T, q *Queue, from, n int) *Batch {
	t.Helper()
	b := q.NewBatch()
	for i := from; i < from+n; i++ {
		id, src := doc(i)
		if err := b.Add(OpCreate, id, src, time.Unix(0, int64(i))); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	return b
}

func TestAppendBatchKeepsOrderAcrossSegments(t *testing.T) {
	// 4 KiB segments: 300 records of about 60 bytes fill several, so the
	// batch is cut at segment ends and written in several pieces.
	q := openQueue(t, Options{Dir: t.TempDir(), SegmentBytes: 4 << 10})
	defer q.Close()
	appendN(t, q, 0, 5)
	b := batchOf(t, q, 5, 300)
	n, err := q.AppendBatch(b)
	if err != nil || n != 300 {
		t.Fatalf("AppendBatch = %d, %v; want 300, nil", n, err)
	}
	appendN(t, q, 305, 5)
	got, _ := readAll(t, q)
	wantRange(t, got, 0, 310)
	st := q.Stats()
	if st.Appended != 310 {
		t.Errorf("Stats.Appended = %d, want 310", st.Appended)
	}
	if st.Segments < 4 {
		t.Errorf("%d segments: the batch should have crossed segment ends", st.Segments)
	}
	// Reset keeps nothing of the old records.
	b.Reset()
	if n, err := q.AppendBatch(b); n != 0 || err != nil {
		t.Fatalf("AppendBatch of an empty batch = %d, %v", n, err)
	}
}

func TestAppendBatchSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, SegmentBytes: 4 << 10})
	if n, err := q.AppendBatch(batchOf(t, q, 0, 100)); err != nil || n != 100 {
		t.Fatalf("AppendBatch = %d, %v", n, err)
	}
	crash(q)
	q = openQueue(t, Options{Dir: dir, SegmentBytes: 4 << 10})
	defer q.Close()
	got, _ := readAll(t, q)
	wantRange(t, got, 0, 100)
}

func TestBatchAddRefusesARecordTooLargeForTheSpool(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), MaxBytes: 16 << 10})
	defer q.Close()
	b := batchOf(t, q, 0, 2)
	err := b.Add(OpCreate, []byte("big"), []byte(strings.Repeat("x", 9<<10)), time.Now())
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--spool-max-bytes") {
		t.Fatalf("Add of a 9 KiB record into a 16 KiB spool: %v; want ErrTooLarge naming --spool-max-bytes", err)
	}
	id, src := doc(2)
	if err := b.Add(OpCreate, id, src, time.Unix(0, 2)); err != nil {
		t.Fatal(err)
	}
	if n, err := q.AppendBatch(b); n != 3 || err != nil {
		t.Fatalf("AppendBatch = %d, %v; want the 3 other records", n, err)
	}
	got, _ := readAll(t, q)
	wantRange(t, got, 0, 3)
}

func TestAppendBatchOnAFullDiskSaysHowManyMadeIt(t *testing.T) {
	dir := t.TempDir()
	fs := newQuotaFS(dir, 6<<10)
	q := openQueue(t, Options{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 4 << 10, SyncInterval: time.Hour, fs: fs})
	defer q.Close()
	n, err := q.AppendBatch(batchOf(t, q, 0, 200))
	if err == nil || !noSpace(err) {
		t.Fatalf("AppendBatch of 12 KiB onto 6 KiB = %d, %v; want a full-disk error", n, err)
	}
	if n == 0 || n >= 200 {
		t.Fatalf("AppendBatch reported %d records written; want the ones that fit (some, not all)", n)
	}
	got, _ := readAll(t, q)
	wantRange(t, got, 0, n)
}

func TestAppendBatchAfterClose(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir()})
	b := batchOf(t, q, 0, 1)
	q.Close()
	if n, err := q.AppendBatch(b); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendBatch after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}
