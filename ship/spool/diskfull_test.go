package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// quotaFS is a disk of limit bytes: the files in dir may hold that much
// together. A write that does not fit writes what fits, then fails with
// ENOSPC, as a full file system does. Unlike a real one, a deleted file
// frees its space at once even while open elsewhere; the faults package
// runs the real thing on a tmpfs (faults.TestSpoolDiskFull).
type quotaFS struct {
	dir      string
	limit    atomic.Int64
	failName string // writes to files of this name always fail with ENOSPC
}

func newQuotaFS(dir string, limit int64) *quotaFS {
	fs := &quotaFS{dir: dir}
	fs.limit.Store(limit)
	return fs
}

func (fs *quotaFS) used() int64 {
	entries, _ := os.ReadDir(fs.dir)
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func (fs *quotaFS) OpenFile(name string, flag int, perm os.FileMode) (writableFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &quotaFile{File: f, fs: fs}, nil
}

type quotaFile struct {
	*os.File
	fs *quotaFS
}

func (f *quotaFile) Write(p []byte) (int, error) {
	free := f.fs.limit.Load() - f.fs.used()
	if filepath.Base(f.Name()) == f.fs.failName {
		free = 0
	}
	if free >= int64(len(p)) {
		return f.File.Write(p)
	}
	n := 0
	if free > 0 {
		n, _ = f.File.Write(p[:free])
	}
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// fill appends documents from..., until n appends in a row were refused,
// and returns the numbers of those accepted. Every refusal must say the
// disk is full, once.
func fill(t *testing.T, q *Queue, from, n int) []int {
	t.Helper()
	var ok []int
	for i, refused := from, 0; refused < n; i++ {
		id, src := doc(i)
		err := q.Append(OpCreate, id, src, time.Unix(0, int64(i)))
		switch {
		case err == nil:
			ok = append(ok, i)
			refused = 0
		case !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "spool: ") || strings.Contains(err.Error(), "spool: spool:"):
			t.Fatalf("Append %d: %v, want one 'spool: ...: no space left on device'", i, err)
		default:
			refused++
		}
		if i > from+100000 {
			t.Fatal("the disk never fills up")
		}
	}
	return ok
}

func wantNumbers(t *testing.T, got, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d is document %d, want %d", i, got[i], want[i])
		}
	}
}

// TestFullDiskRecoversOnceAcknowledged: on a disk much smaller than a
// segment, appends fill it and are refused; once the reader's records are
// acknowledged, the next append gets room again without any housekeeping
// (the sync interval is an hour here): the active segment, all
// acknowledged, is emptied and replaced. Nothing written is damaged.
func TestFullDiskRecoversOnceAcknowledged(t *testing.T) {
	dir := t.TempDir()
	const disk = 64 << 10
	fs := newQuotaFS(dir, disk)
	opts := Options{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 4 << 20, SyncInterval: time.Hour, fs: fs}
	q := openQueue(t, opts)
	kept := fill(t, q, 0, 20)
	if len(kept) < 500 {
		t.Fatalf("only %d documents fit on a %d-byte disk", len(kept), disk)
	}
	got, end := readAll(t, q)
	wantNumbers(t, got, kept)

	q.Ack(end)
	more := fill(t, q, 10000, 20) // fills it once more, after reclaiming
	if len(more) < len(kept)*9/10 {
		t.Fatalf("after every record was acknowledged, %d documents fit, want about %d", len(more), len(kept))
	}
	got, end = readAll(t, q)
	wantNumbers(t, got, more)
	if u := fs.used(); u > disk {
		t.Fatalf("%d bytes used on a %d-byte disk", u, disk)
	}

	// A crash now: the position was never saved, and the segments of the
	// first fill are gone. The restart replays what is there, undamaged.
	crash(q)
	q = openQueue(t, Options{Dir: dir, SyncInterval: time.Hour})
	got, _ = readAll(t, q)
	wantNumbers(t, got, more)
	if st := q.Stats(); st.CorruptTails != 0 {
		t.Fatalf("a cut-back or deleted segment was taken for damage: %+v", st)
	}
	q.Ack(end)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAcknowledgedSegmentsAreDeletedWhenThePositionCannotBeSaved: the
// position file cannot be written at all, yet acknowledged segments go,
// and after a crash the stale position (naming a deleted segment) replays
// what is left without counting damage.
func TestAcknowledgedSegmentsAreDeletedWhenThePositionCannotBeSaved(t *testing.T) {
	dir := t.TempDir()
	fs := newQuotaFS(dir, 1<<20)
	fs.failName = positionFile + ".tmp"
	// Housekeeping is run by hand (q.housekeep below), not on a ticker, so
	// that the crash leaves nothing running.
	q := openQueue(t, Options{Dir: dir, SegmentBytes: 4 << 10, SyncInterval: time.Hour, fs: fs})
	appendN(t, q, 0, 300)
	if n := countFiles(t, dir); n < 4 {
		t.Fatalf("want several segments, got %d", n)
	}
	got, end := readAll(t, q)
	wantRange(t, got, 0, 300)
	q.Ack(end)
	fsyncs := newFsyncer()
	defer fsyncs.close()
	q.housekeep(fsyncs)
	if n := countFiles(t, dir); n != 1 {
		t.Fatalf("acknowledged segments kept while the position cannot be saved: %d files", n)
	}
	if st := q.Stats(); st.Saved != (Position{}) {
		t.Fatalf("position saved as %+v through a file that cannot be written", st.Saved)
	}
	if _, err := os.Stat(filepath.Join(dir, positionFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed position save left its temporary file: %v", err)
	}
	appendN(t, q, 300, 5)
	crash(q)

	q = openQueue(t, Options{Dir: dir})
	defer q.Close()
	got, _ = readAll(t, q)
	// The active segment was all acknowledged but not emptied (the disk
	// was never full): its records come again, then the 5 new ones.
	if len(got) < 5 || got[len(got)-1] != 304 {
		t.Fatalf("replayed %v, want the last records up to 304", got)
	}
	wantRange(t, got[len(got)-5:], 300, 5)
	if st := q.Stats(); st.CorruptTails != 0 {
		t.Fatalf("deleted segments were taken for damage: %+v", st)
	}
}

// TestMissingSegmentIsNotDamage: a saved position naming a segment that is
// gone (deleted once acknowledged, before the position was saved) and a
// gap in the numbers are read past, not counted as corruption.
func TestMissingSegmentIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, SegmentBytes: 4 << 10})
	appendN(t, q, 0, 300)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	seqs, _ := listSegments(dir)
	if len(seqs) < 4 {
		t.Fatalf("want several segments, got %d", len(seqs))
	}
	first := segmentPath(dir, seqs[0])
	n, _ := countRecords(first, segmentHeader, 1<<30)
	third := segmentPath(dir, seqs[2])
	n3, _ := countRecords(third, segmentHeader, 1<<30)
	os.Remove(first)
	os.Remove(third) // as if the reader were past it, with the position behind
	if err := writePosition(osFS{}, dir, Position{Segment: seqs[0], Offset: 500}, writableFile.Sync); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, Options{Dir: dir})
	defer q.Close()
	got, _ := readAll(t, q)
	if len(got) != 300-int(n)-int(n3) || got[0] != int(n) || got[len(got)-1] != 299 {
		t.Fatalf("read %d records from %v to %v, want %d from %d to 299", len(got), got[0], got[len(got)-1], 300-n-n3, n)
	}
	if st := q.Stats(); st.CorruptTails != 0 {
		t.Fatalf("missing segments counted as damage: %+v", st)
	}
	appendN(t, q, 1000, 1) // and a new segment never reuses a number
	got, _ = readAll(t, q)
	wantRange(t, got, 1000, 1)
}

// TestOpenOnAFullDisk: Open succeeds on a disk with no room for a new
// segment; appends are refused until the records already there are
// acknowledged, and the first one after that gets in.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	appendN(t, q, 0, 50)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	fs := newQuotaFS(dir, 0)
	fs.limit.Store(fs.used())
	q, err := Open(Options{Dir: dir, SyncInterval: time.Hour, fs: fs})
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	defer q.Close()
	id, src := doc(100)
	err = q.Append(OpCreate, id, src, time.Unix(0, 100))
	if !errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "spool: spool:") {
		t.Fatalf("Append on a full disk: %v, want one 'spool: ...: no space left on device'", err)
	}
	got, end := readAll(t, q)
	wantRange(t, got, 0, 50)
	q.Ack(end)
	// The next append deletes the acknowledged segment itself (the
	// housekeeper's interval is an hour) and gets in.
	id, src = doc(101)
	if err := q.Append(OpCreate, id, src, time.Unix(0, 101)); err != nil {
		t.Fatalf("append refused after the spool was acknowledged: %v", err)
	}
	got, _ = readAll(t, q)
	wantRange(t, got, 101, 1)
}
