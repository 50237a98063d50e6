package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openQueue(t *testing.T, opts Options) *Queue {
	t.Helper()
	q, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

func doc(i int) (id, source []byte) {
	return fmt.Appendf(nil, "id-%06d", i), fmt.Appendf(nil, `{"message":"document %d","n":%d}`, i, i)
}

func appendN(t *testing.T, q *Queue, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		id, src := doc(i)
		if err := q.Append(OpCreate, id, src, time.Unix(0, int64(i))); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// readAll reads every record available now and returns their numbers and
// the End of the last one.
func readAll(t *testing.T, q *Queue) ([]int, Position) {
	t.Helper()
	var got []int
	var end Position
	for {
		rec, ok, err := q.Reader().Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !ok {
			return got, end
		}
		var n int
		if _, err := fmt.Sscanf(string(rec.ID), "id-%d", &n); err != nil {
			t.Fatalf("bad id %q", rec.ID)
		}
		_, want := doc(n)
		if !bytes.Equal(rec.Source, want) || rec.Created.UnixNano() != int64(n) {
			t.Fatalf("record %d: source %q created %d", n, rec.Source, rec.Created.UnixNano())
		}
		got = append(got, n)
		end = rec.End
	}
}

func wantRange(t *testing.T, got []int, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	for i, v := range got {
		if v != from+i {
			t.Fatalf("record %d is document %d, want %d (order or duplicates broken)", i, v, from+i)
		}
	}
}

// crash abandons a queue the way a killed process does: files closed by
// the kernel, no final fsync, no position save. The housekeeper goroutine
// is left waiting on its (hour-long) ticker.
func crash(q *Queue) {
	q.mu.Lock()
	q.closed = true
	if q.active != nil {
		q.active.w.Close()
	}
	q.mu.Unlock()
	q.reader.closeSegment()
	q.lock.Close()
}

func TestAppendReadAckRestart(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	appendN(t, q, 0, 100)
	got, end := readAll(t, q)
	wantRange(t, got, 0, 100)
	q.Ack(end)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, Options{Dir: dir})
	defer q.Close()
	if got, _ := readAll(t, q); len(got) != 0 {
		t.Fatalf("acknowledged records delivered again: %v", got)
	}
	appendN(t, q, 100, 5)
	got, _ = readAll(t, q)
	wantRange(t, got, 100, 5)
}

func TestReplaysWhatWasNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 8 << 10})
	appendN(t, q, 0, 400) // several segments
	var ackAt Position
	for i := range 400 {
		rec, ok, err := q.Reader().Next()
		if err != nil || !ok {
			t.Fatalf("Next %d: ok=%v err=%v", i, ok, err)
		}
		if i == 249 {
			ackAt = rec.End
		}
	}
	q.Ack(ackAt)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 8 << 10})
	defer q.Close()
	got, _ := readAll(t, q)
	wantRange(t, got, 250, 150)
}

func TestCrashKeepsEveryAppendedRecord(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SyncInterval: time.Hour, SegmentBytes: 8 << 10}
	q := openQueue(t, opts)
	appendN(t, q, 0, 300)
	got, end := readAll(t, q)
	wantRange(t, got, 0, 300)
	q.Ack(end) // never saved: the process dies first
	crash(q)

	q = openQueue(t, opts)
	defer q.Close()
	got, _ = readAll(t, q)
	wantRange(t, got, 0, 300) // at least once: all delivered again
}

func TestTornAndCorruptTailsAreCutAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   int
	}{
		{"torn record", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			// A header announcing 100 bytes, followed by only 10 of them.
			f.Write([]byte{100, 0, 0, 0, 1, 2, 3, 4, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'})
			f.Close()
		}, 20},
		{"checksum mismatch in the last record", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-3] ^= 0xff
			os.WriteFile(path, b, 0o600)
		}, 19},
		{"zeros after the last record", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 4096))
			f.Close()
		}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, Options{Dir: dir})
			appendN(t, q, 0, 20)
			crash(q)
			seqs, _ := listSegments(dir)
			tc.damage(t, segmentPath(dir, seqs[len(seqs)-1]))

			q = openQueue(t, Options{Dir: dir})
			defer q.Close()
			st := q.Stats()
			if st.CorruptTails != 1 || st.CorruptBytes == 0 {
				t.Fatalf("damage not counted: %+v", st)
			}
			got, _ := readAll(t, q)
			wantRange(t, got, 0, tc.want)
			appendN(t, q, 100, 1) // and the queue still works
			got, _ = readAll(t, q)
			wantRange(t, got, 100, 1)
		})
	}
}

func TestCorruptionInAnOlderSegmentSkipsTheRestOfIt(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 4 << 10}
	q := openQueue(t, opts)
	appendN(t, q, 0, 200)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	seqs, _ := listSegments(dir)
	if len(seqs) < 3 {
		t.Fatalf("want several segments, got %d", len(seqs))
	}
	first := segmentPath(dir, seqs[0])
	b, _ := os.ReadFile(first)
	b[segmentHeader+recordHeader+12] ^= 0xff // inside the first record's payload
	os.WriteFile(first, b, 0o600)
	perSegment, _ := countRecords(first, segmentHeader, int64(len(b)))

	q = openQueue(t, opts)
	defer q.Close()
	got, _ := readAll(t, q)
	wantRange(t, got, int(perSegment), 200-int(perSegment))
	if st := q.Stats(); st.CorruptTails != 1 {
		t.Fatalf("CorruptTails = %d, want 1", st.CorruptTails)
	}
}

func TestAcknowledgedSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, SegmentBytes: 4 << 10, SyncInterval: 5 * time.Millisecond})
	defer q.Close()
	appendN(t, q, 0, 300)
	if n := countFiles(t, dir); n < 4 {
		t.Fatalf("want several segments, got %d", n)
	}
	_, end := readAll(t, q)
	q.Ack(end)
	deadline := time.Now().Add(5 * time.Second)
	for countFiles(t, dir) != 1 || q.Stats().Saved != end {
		if time.Now().After(deadline) {
			t.Fatalf("fully acknowledged segments still there (%d files), or position not saved (%+v, want %+v)", countFiles(t, dir), q.Stats().Saved, end)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestCapDropsTheOldestSegmentAndCountsExactly(t *testing.T) {
	dir := t.TempDir()
	const max = 64 << 10
	q := openQueue(t, Options{Dir: dir, MaxBytes: max})
	appendN(t, q, 0, 50)
	var read []int
	for range 10 { // the reader has claimed these: they are not lost
		rec, ok, err := q.Reader().Next()
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		var n int
		fmt.Sscanf(string(rec.ID), "id-%d", &n)
		read = append(read, n)
	}
	appendN(t, q, 50, 2000) // ~100 KiB more: over the cap
	if st := q.Stats(); st.Bytes > max {
		t.Fatalf("spool holds %d bytes, over the cap of %d", st.Bytes, max)
	}
	rest, _ := readAll(t, q)
	if err := q.Close(); err != nil { // counts the dropped segments
		t.Fatal(err)
	}
	st := q.Stats()
	if st.DroppedFull == 0 {
		t.Fatal("nothing dropped over the cap")
	}
	if got := uint64(len(read)+len(rest)) + st.DroppedFull; got != 2050 {
		t.Fatalf("read %d + dropped %d = %d, want 2050 appended: a drop was miscounted",
			len(read)+len(rest), st.DroppedFull, got)
	}
	if rest[len(rest)-1] != 2049 {
		t.Fatalf("the newest record is %d, want 2049", rest[len(rest)-1])
	}
}

func TestDamagedPositionFileReplaysEverything(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	appendN(t, q, 0, 10)
	_, end := readAll(t, q)
	q.Ack(end)
	q.Close()
	os.WriteFile(filepath.Join(dir, positionFile), []byte("garbage"), 0o600)

	q = openQueue(t, Options{Dir: dir})
	defer q.Close()
	got, _ := readAll(t, q)
	wantRange(t, got, 0, 10)
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	defer q.Close()
	_, err := Open(Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open on the same directory: %v, want an 'in use' error", err)
	}
}

func TestLimits(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), MaxBytes: 64 << 10})
	defer q.Close()
	if err := q.Append(OpCreate, []byte("x"), make([]byte, 40<<10), time.Now()); err == nil {
		t.Fatal("a record over half the cap was accepted")
	}
	if err := q.Append(OpCreate, make([]byte, 70000), nil, time.Now()); err == nil {
		t.Fatal("an id over 65535 bytes was accepted")
	}
	if _, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1000}); err == nil {
		t.Fatal("a 1000-byte cap was accepted")
	}
	q.Close()
	if err := q.Append(OpCreate, []byte("x"), []byte("{}"), time.Now()); err != ErrClosed {
		t.Fatalf("Append after Close: %v", err)
	}
}
