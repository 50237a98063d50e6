package capture

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testPoll = 10 * time.Millisecond

// runTailer runs a tailer until the returned stop function is called; stop
// waits for Run to return (offsets saved).
func runTailer(t *testing.T, o TailerOptions, tweak ...func(*Tailer)) (sink *recordSink, stop func()) {
	t.Helper()
	if o.Sink == nil {
		o.Sink = newRecordSink()
	}
	o.PollInterval = testPoll
	tl, err := NewTailer(o)
	if err != nil {
		t.Fatalf("NewTailer: %v", err)
	}
	for _, f := range tweak {
		f(tl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	<-tl.scanned // where files start depends on what the first scan found
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return o.Sink.(*recordSink), stop
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// settle writes a marker line and waits for it, so that every line written
// before it has been read too.
func settle(t *testing.T, sink *recordSink, path, marker string) {
	t.Helper()
	appendFile(t, path, marker+"\n")
	sink.waitText(t, marker)
}

func TestTailStartsAtEndByDefault(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "old1\nold2\nhalf a li")
	sink, _ := runTailer(t, TailerOptions{Paths: []string{log}})
	appendFile(t, log, "ne\nnew1\n")
	settle(t, sink, log, "new2")
	equalStrings(t, "lines", sink.texts(File), []string{"new1", "new2"})
	if r := sink.all()[0]; r.Origin != log || r.Stream != File || r.Time.IsZero() {
		t.Fatalf("line %+v: want origin %s, stream file, a time", r, log)
	}
}

func TestTailFromBeginning(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "old1\r\nold2\nhalf a li")
	sink, _ := runTailer(t, TailerOptions{Paths: []string{log}, FromBeginning: true})
	appendFile(t, log, "ne\n")
	settle(t, sink, log, "end")
	equalStrings(t, "lines", sink.texts(File), []string{"old1", "old2", "half a line", "end"})
}

// logrotate's default: rename, create a new file; the writer keeps writing
// to the renamed one until it reopens its log.
func TestTailRotationByRename(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	w, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sink, _ := runTailer(t, TailerOptions{Paths: []string{log}})
	w.WriteString("a1\na2\n")
	sink.waitText(t, "a2")

	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	w.WriteString("a3\nlast without newline")
	appendFile(t, log, "b1\n")
	settle(t, sink, log, "b2")
	// The renamed file's unfinished last line is handed on when it is let go.
	sink.waitText(t, "last without newline")
	equalStrings(t, "lines", sink.texts(File), []string{"a1", "a2", "a3", "b1", "b2", "last without newline"})
	for _, r := range sink.all() {
		if r.Origin != log {
			t.Errorf("line %q has origin %q, want %q for both generations", r.Text, r.Origin, log)
		}
	}
}

func TestTailCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "")
	sink, _ := runTailer(t, TailerOptions{Paths: []string{log}})
	appendFile(t, log, "before1\nbefore2\n")
	sink.waitText(t, "before2")
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, "t1\n")
	sink.waitText(t, "t1")
	settle(t, sink, log, "t2")
	equalStrings(t, "lines", sink.texts(File), []string{"before1", "before2", "t1", "t2"})
}

func TestTailGlobPicksUpNewFiles(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "a.log"), "a-old\n")
	sink, _ := runTailer(t, TailerOptions{Paths: []string{filepath.Join(dir, "*.log")}})
	appendFile(t, filepath.Join(dir, "notes.txt"), "not matched\n")
	// A file appearing later is read from its start.
	appendFile(t, filepath.Join(dir, "b.log"), "b1\nb2\n")
	sink.waitText(t, "b2")
	settle(t, sink, filepath.Join(dir, "a.log"), "a-new")
	got := map[string]string{}
	for _, r := range sink.all() {
		got[r.Text] = filepath.Base(r.Origin)
	}
	want := map[string]string{"b1": "b.log", "b2": "b.log", "a-new": "a.log"}
	if len(got) != len(want) || len(sink.all()) != len(want) {
		t.Fatalf("lines %+v, want %v", sink.all(), want)
	}
	for text, origin := range want {
		if got[text] != origin {
			t.Errorf("line %q from %q, want %q", text, got[text], origin)
		}
	}
}

func readState(t *testing.T, dir string) stateFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file: %v\n%s", err, b)
	}
	return st
}

func TestTailResumesFromSavedOffsets(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "l1\nl2\nunfinis")
	sink1, stop := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state, FromBeginning: true})
	sink1.waitText(t, "l2")
	stop()
	st := readState(t, state)
	if len(st.Files) != 1 || st.Files[0].Offset != 6 || st.Files[0].Path != log {
		t.Fatalf("saved state %+v: want app.log at offset 6, the start of the unfinished line", st)
	}
	entries, _ := os.ReadDir(state)
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d files, want only %s (no temp files left)", len(entries), StateFileName)
	}

	// Written while replaylink was down.
	appendFile(t, log, "hed\nl3\n")
	sink2, _ := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state})
	settle(t, sink2, log, "l4")
	all := append(sink1.texts(File), sink2.texts(File)...)
	equalStrings(t, "lines over both runs", all, []string{"l1", "l2", "unfinished", "l3", "l4"})
}

func TestTailResumesInsideLongLine(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "0123456789abcdef")
	sink1, stop := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state, FromBeginning: true, MaxLineBytes: 8})
	sink1.waitText(t, "01234567")
	stop()
	appendFile(t, log, "ghij\nnext\n")
	sink2, _ := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state, MaxLineBytes: 8})
	sink2.waitText(t, "next")
	equalStrings(t, "second run", sink2.texts(File), []string{"next"})
	if r := sink1.all(); len(r) != 1 || !r[0].Truncated {
		t.Fatalf("first run: %+v", r)
	}
}

// A file replaced while replaylink was down (whether or not the new one got
// the old inode) is read from its start, not from the old offset.
func TestTailFileReplacedWhileDown(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "old file line\n")
	sink1, stop := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state, FromBeginning: true})
	sink1.waitText(t, "old file line")
	stop()
	time.Sleep(20 * time.Millisecond) // past the save, even with coarse file times
	os.Remove(log)
	appendFile(t, log, "new file, first line is longer\n")
	sink2, _ := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state})
	settle(t, sink2, log, "more")
	equalStrings(t, "second run", sink2.texts(File), []string{"new file, first line is longer", "more"})
}

// The saved head hash is what tells an inode reused by another file from the
// file that was being read.
func TestTailSavedOffsetOfAnotherFile(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "line one\nline two\n")
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	forged := stateFile{Version: stateVersion, Saved: time.Now().Add(time.Hour), Files: []savedFile{{
		Path: log, Dev: uint64(st.Dev), Ino: st.Ino, Position: Position{Offset: 9},
		HeadLen: 9, HeadHash: "0123456789abcdef",
	}}}
	b, _ := json.Marshal(forged)
	if err := os.WriteFile(filepath.Join(state, StateFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	sink, _ := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state})
	settle(t, sink, log, "three")
	equalStrings(t, "lines", sink.texts(File), []string{"line one", "line two", "three"})
}

func TestNewTailerErrors(t *testing.T) {
	sink := newRecordSink()
	for _, c := range []struct {
		o    TailerOptions
		want string
	}{
		{TailerOptions{Sink: sink}, "no file"},
		{TailerOptions{Paths: []string{"/var/log/[oops"}, Sink: sink}, "[oops"},
		{TailerOptions{Paths: []string{"/var/log/x"}}, "Sink"},
	} {
		if _, err := NewTailer(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %q", c.o, err, c.want)
		}
	}
}

// Quiet files are closed and reopened where they were when they change.
func TestTailClosesQuietFiles(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, "")
	var tl *Tailer
	sink, stop := runTailer(t, TailerOptions{Paths: []string{log}, StateDir: state}, func(t *Tailer) {
		t.inactiveAfter = time.Millisecond // every quiet poll closes it
		tl = t
	})
	for _, step := range []struct{ write, wait string }{
		{"one\n", "one"}, {"two\nthr", "two"}, {"ee\n", "three"}, {"four\n", "four"},
	} {
		appendFile(t, log, step.write)
		sink.waitText(t, step.wait)
		time.Sleep(5 * testPoll) // quiet: closed
	}
	stop()
	equalStrings(t, "lines", sink.texts(File), []string{"one", "two", "three", "four"})
	if len(tl.known) != 1 || len(tl.byID) != 0 {
		t.Fatalf("after a quiet spell: %d files closed with a known offset, %d open; want 1, 0", len(tl.known), len(tl.byID))
	}
	if st := readState(t, state); len(st.Files) != 1 || st.Files[0].Offset != 19 {
		t.Fatalf("state %+v: want the closed file at offset 19", st)
	}
}
