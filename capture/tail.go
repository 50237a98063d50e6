package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/rs/zerolog"
)

const (
	// StateFileName is the tailer's state file inside StateDir.
	StateFileName       = "capture-tail.json"
	stateVersion        = 1
	stateSaveInterval   = time.Second
	defaultPollInterval = 250 * time.Millisecond
	headBytes           = 256
	// A busy file yields to the others after this much per poll.
	maxPassBytes = 4 << 20
	// A file still matched but quiet this long is closed until it changes.
	defaultInactiveAfter = 5 * time.Minute
)

// TailerOptions configure a Tailer.
type TailerOptions struct {
	// Paths are files or glob patterns (path/filepath.Match syntax), e.g.
	// /var/log/app/*.log. Globs are evaluated again at every poll.
	Paths []string
	// StateDir keeps the read offsets across restarts (the spool dir);
	// "": offsets are not remembered.
	StateDir     string
	Sink         Sink // required
	MaxLineBytes int  // DefaultMaxLineBytes when 0
	// PollInterval is how often files are globbed and read (default 250ms).
	// Line.Time of file lines is when they were read, up to this much late.
	PollInterval time.Duration
	// FromBeginning reads files found at start-up from their start instead of
	// their end (only those without a saved offset).
	FromBeginning bool
	// HookNonce is the nonce of the runtime hooks writing the files (a
	// sidecar's app container, see package hooks); zero: none. Their
	// marks are taken off each line, into Line.Hook.
	HookNonce hooks.Nonce
	Logger    zerolog.Logger // zero value: no logging
}

// Tailer follows log files written by another process (a backend in another
// container writing to a shared volume).
//
// Goroutines: everything (glob scan, reads, Sink calls, state saves) runs on
// the goroutine that calls Run, so the open files and the state need no lock.
//
// Files are polled, not watched (no inotify): every PollInterval the patterns
// are globbed and every open file is read to its end. A file is known by
// device and inode, not by name, so a file renamed by rotation keeps being
// read (to its end, and until it has been quiet for a while) before its
// successor at the old name, and a rename to a name that still matches is
// not seen as a new file. A file that shrinks under its read offset was
// truncated (copytruncate) and is read again from its start. A file quiet for
// 5 minutes is closed (its buffer returned) and reopened at its offset when
// it changes, so that globs matching many old files hold no descriptors.
//
// Where reading starts on a file without a saved offset: files present at
// the first scan start at their end (the first complete line written after
// start-up), unless FromBeginning; files that appear later (rotation, new
// files matching a glob) are read from their start. After a restart, a file
// without an offset that was modified after the last save is read from its
// start too, as it may have been created while replaylink was down.
//
// On-disk state (StateDir/capture-tail.json), written as a temp file, fsynced
// and renamed into place, at most once per second and on exit:
//
//	{"version":1,"saved":"<RFC 3339>","files":[{"path":"/var/log/app.log",
//	 "dev":2049,"ino":1234,"offset":5678,"in_long_line":false,
//	 "head_len":256,"head_fnv64a":"8c2b..."}]}
//
// offset is the start of the first line not yet handed to the Sink (so lines
// read since the last save are read again after a crash: at-least-once);
// in_long_line says the line there was already handed on, cut, and its rest
// is skipped. head_fnv64a hashes the file's first head_len bytes (at most
// 256) to recognise an inode reused by another file.
//
// Create it with NewTailer.
type Tailer struct {
	o     TailerOptions
	files []*tailedFile // open files, oldest first
	byID  map[fileID]*tailedFile
	// known holds the offsets of files not open: loaded from the state file,
	// or of files closed while quiet. Entries of files no longer found go.
	known         map[fileID]savedFile
	savedAt       time.Time // when the loaded state was saved; zero without one
	dirty         bool
	lastSave      time.Time
	saveFailing   bool            // the last save failed (logged once)
	openError     map[string]bool // paths whose open error was logged
	inactiveAfter time.Duration
	scanned       chan struct{} // closed after the first scan (tests wait on it)
}

type fileID struct{ dev, ino uint64 }

type tailedFile struct {
	id       fileID
	origin   string // path where it was found first: Line.Origin
	f        *os.File
	r        offsetReader
	lr       *LineReader
	gone     bool      // no longer found by the patterns (rotated or removed)
	lastData time.Time // when bytes were last read (or it went gone)
	headLen  int
	headHash string // FNV-64a of the first headLen bytes, hex
}

// offsetReader knows how far the file has been read, to notice truncation.
type offsetReader struct {
	f   *os.File
	off int64
}

func (r *offsetReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	r.off += int64(n)
	return n, err
}

type stateFile struct {
	Version int         `json:"version"`
	Saved   time.Time   `json:"saved"`
	Files   []savedFile `json:"files"`
}

type savedFile struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	Position
	HeadLen  int    `json:"head_len,omitempty"`
	HeadHash string `json:"head_fnv64a,omitempty"`

	// For a file closed while quiet: how far it had been read and its
	// modification time then; while both still hold it is left closed.
	readTo  int64
	modTime time.Time
}

// NewTailer checks the options and loads the saved offsets.
func NewTailer(o TailerOptions) (*Tailer, error) {
	if len(o.Paths) == 0 {
		return nil, errors.New("capture: no file to tail")
	}
	for _, p := range o.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("capture: tail pattern %q: %w (see https://pkg.go.dev/path/filepath#Match)", p, err)
		}
	}
	if o.Sink == nil {
		return nil, errors.New("capture: TailerOptions.Sink is nil")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	t := &Tailer{o: o, byID: map[fileID]*tailedFile{}, known: map[fileID]savedFile{},
		openError: map[string]bool{}, inactiveAfter: defaultInactiveAfter, scanned: make(chan struct{})}
	if o.StateDir != "" {
		if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("capture: state directory for tail offsets: %w", err)
		}
		t.load()
	}
	return t, nil
}

// Run follows the files until ctx is done, then saves the offsets and
// returns. It returns an error only if the final save failed.
func (t *Tailer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.o.PollInterval)
	defer tick.Stop()
	first := true
	for {
		busy := t.poll(first)
		if first {
			first = false
			t.dirty = true
			close(t.scanned)
		}
		if time.Since(t.lastSave) >= stateSaveInterval {
			t.save()
		}
		if busy {
			select {
			case <-ctx.Done():
				return t.stop()
			default:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return t.stop()
		case <-tick.C:
		}
	}
}

// stop closes the files without handing on unfinished last lines (they are
// read whole next time) and saves the offsets.
func (t *Tailer) stop() error {
	t.dirty = true
	err := t.save()
	for _, tf := range t.files {
		tf.lr.Release()
		tf.f.Close()
	}
	t.files, t.byID = nil, map[fileID]*tailedFile{}
	return err
}

type candidate struct {
	id   fileID
	path string
	fi   os.FileInfo
}

// scan globs the patterns: regular files, once each, in pattern order.
func (t *Tailer) scan() []candidate {
	var found []candidate
	seen := map[fileID]bool{}
	for _, pat := range t.o.Paths {
		matches, _ := filepath.Glob(pat) // the patterns were checked
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id := idOf(fi)
			if !seen[id] {
				seen[id] = true
				found = append(found, candidate{id, m, fi})
			}
		}
	}
	return found
}

// poll reads what was added to the open files, then opens and reads new
// ones. It reports whether a file had more to read than one pass allows.
func (t *Tailer) poll(first bool) (busy bool) {
	found := t.scan()
	present := make(map[fileID]bool, len(found))
	for _, c := range found {
		present[c.id] = true
	}
	for id := range t.known {
		if !present[id] {
			delete(t.known, id)
			t.dirty = true
		}
	}
	now := time.Now()
	// Files already open come first: a rotated file is finished before the
	// file that replaced it is read.
	keep := t.files[:0]
	for _, tf := range t.files {
		if !present[tf.id] && !tf.gone {
			tf.gone, tf.lastData = true, now
			tailRotations.Inc()
			t.o.Logger.Debug().Str("path", tf.origin).Msg("tailed file rotated or removed; reading it to its end")
		} else if present[tf.id] {
			tf.gone = false
		}
		if t.follow(tf) {
			busy = true
		}
		if tf.gone && now.Sub(tf.lastData) >= t.closeIdle() {
			t.finish(tf)
			continue
		}
		if !tf.gone && now.Sub(tf.lastData) >= t.inactiveAfter {
			t.park(tf)
			continue
		}
		keep = append(keep, tf)
	}
	clear(t.files[len(keep):])
	t.files = keep

	for _, c := range found {
		if t.byID[c.id] != nil {
			continue
		}
		if k, ok := t.known[c.id]; ok && k.readTo == c.fi.Size() && k.modTime.Equal(c.fi.ModTime()) {
			continue // closed while quiet, and still unchanged
		}
		tf := t.open(c, first)
		if tf != nil && t.follow(tf) {
			busy = true
		}
	}
	return busy
}

// closeIdle is how long a rotated file is still read after its last data:
// the writer may not have reopened its log yet.
func (t *Tailer) closeIdle() time.Duration {
	return max(20*t.o.PollInterval, time.Second)
}

func (t *Tailer) open(c candidate, first bool) *tailedFile {
	f, err := os.Open(c.path)
	if err != nil {
		tailOpenErrors.Inc()
		if !t.openError[c.path] {
			t.openError[c.path] = true
			t.o.Logger.Warn().Err(err).Str("path", c.path).Msg("cannot open file to tail; retrying at every poll")
		}
		return nil
	}
	delete(t.openError, c.path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil
	}
	// The name may point to another file since the scan: trust the open one.
	id := idOf(fi)
	if t.byID[id] != nil {
		f.Close()
		return nil
	}
	tf := &tailedFile{id: id, origin: c.path, f: f, lastData: time.Now()}
	pos := t.startPosition(tf, fi, first)
	if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
		f.Close()
		return nil
	}
	tf.r = offsetReader{f: f, off: pos.Offset}
	tf.lr = NewLineReader(&tf.r, t.o.MaxLineBytes)
	tf.lr.SetPosition(pos)
	t.files = append(t.files, tf)
	t.byID[id] = tf
	t.dirty = true
	t.o.Logger.Debug().Str("path", c.path).Int64("offset", pos.Offset).Msg("tailing file")
	return tf
}

// startPosition decides where a newly opened file is read from.
func (t *Tailer) startPosition(tf *tailedFile, fi os.FileInfo, first bool) Position {
	size := fi.Size()
	if s, ok := t.known[tf.id]; ok {
		delete(t.known, tf.id)
		if s.Offset <= size && tf.matchesHead(s) {
			tf.headLen, tf.headHash = s.HeadLen, s.HeadHash
			return s.Position
		}
		t.o.Logger.Info().Str("path", tf.origin).Msg("tailed file was replaced or truncated since it was last read; reading it from its start")
		return Position{}
	}
	writtenWhileDown := !t.savedAt.IsZero() && fi.ModTime().After(t.savedAt)
	if first && !t.o.FromBeginning && !writtenWhileDown {
		// Its end, skipping a last line still being written.
		var last [1]byte
		if size == 0 {
			return Position{}
		}
		if _, err := tf.f.ReadAt(last[:], size-1); err != nil {
			return Position{Offset: size}
		}
		return Position{Offset: size, InLongLine: last[0] != '\n'}
	}
	return Position{}
}

// follow hands on the complete lines added to a file since the last poll.
// It reports whether it stopped early to let other files be read.
func (t *Tailer) follow(tf *tailedFile) bool {
	l := Line{Stream: File, Origin: tf.origin}
	if fi, err := tf.f.Stat(); err == nil && fi.Size() < tf.r.off {
		tailTruncations.Inc()
		t.o.Logger.Info().Str("path", tf.origin).Msg("tailed file was truncated; reading it from its start")
		t.handFinal(tf, &l)
		if _, err := tf.f.Seek(0, io.SeekStart); err != nil {
			tailReadErrors.Inc()
			return false
		}
		tf.lr.Release()
		tf.r.off = 0
		tf.lr = NewLineReader(&tf.r, t.o.MaxLineBytes)
		tf.headLen, tf.headHash = 0, ""
		t.dirty = true
	}
	from := tf.r.off
	defer func() {
		if tf.r.off != from {
			tf.lastData = time.Now()
			t.dirty = true
		}
	}()
	for {
		err := tf.lr.Next(&l)
		if err == io.EOF {
			return false
		}
		if err != nil {
			tailReadErrors.Inc()
			t.o.Logger.Warn().Err(err).Str("path", tf.origin).Msg("reading tailed file")
			return false
		}
		deliver(t.o.Sink, &l, t.o.HookNonce)
		if tf.r.off-from >= maxPassBytes {
			return true
		}
	}
}

// finish closes a rotated file that has been quiet, handing on its last
// line even without a newline: nothing will complete it.
func (t *Tailer) finish(tf *tailedFile) {
	l := Line{Stream: File, Origin: tf.origin}
	t.handFinal(tf, &l)
	tf.lr.Release()
	tf.f.Close()
	delete(t.byID, tf.id)
	t.dirty = true
	t.o.Logger.Debug().Str("path", tf.origin).Msg("done with rotated file")
}

// park closes a quiet file that is still matched, keeping its offset.
func (t *Tailer) park(tf *tailedFile) {
	s := t.record(tf)
	s.readTo = tf.r.off
	if fi, err := tf.f.Stat(); err == nil {
		s.modTime = fi.ModTime()
	}
	t.known[tf.id] = s
	tf.lr.Release()
	tf.f.Close()
	delete(t.byID, tf.id)
	t.dirty = true
	t.o.Logger.Debug().Str("path", tf.origin).Msg("closing quiet file until it changes")
}

// record is what is saved of an open file.
func (t *Tailer) record(tf *tailedFile) savedFile {
	pos := tf.lr.Position()
	tf.updateHead(pos.Offset)
	return savedFile{Path: tf.origin, Dev: tf.id.dev, Ino: tf.id.ino, Position: pos, HeadLen: tf.headLen, HeadHash: tf.headHash}
}

func (t *Tailer) handFinal(tf *tailedFile, l *Line) {
	if tf.lr.Final(l) {
		deliver(t.o.Sink, l, t.o.HookNonce)
	}
}

func (t *Tailer) statePath() string { return filepath.Join(t.o.StateDir, StateFileName) }

// load reads the saved offsets. A missing file is a first run; an unreadable
// one is logged and ignored (files then start as on a first run).
func (t *Tailer) load() {
	b, err := os.ReadFile(t.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var st stateFile
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err == nil && st.Version != stateVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	if err != nil {
		t.o.Logger.Warn().Err(err).Str("path", t.statePath()).Msg("ignoring unreadable tail offsets; files start as on a first run")
		return
	}
	t.savedAt = st.Saved
	for _, s := range st.Files {
		t.known[fileID{s.Dev, s.Ino}] = s
	}
}

// save writes the offsets of the open files if they changed.
func (t *Tailer) save() error {
	if t.o.StateDir == "" || !t.dirty {
		return nil
	}
	st := stateFile{Version: stateVersion, Saved: time.Now().UTC(), Files: []savedFile{}}
	for _, tf := range t.files {
		st.Files = append(st.Files, t.record(tf))
	}
	for _, s := range t.known {
		st.Files = append(st.Files, s)
	}
	b, err := json.Marshal(st)
	if err == nil {
		err = writeFileAtomic(t.statePath(), b)
	}
	t.lastSave = time.Now()
	if err != nil {
		tailStateErrors.Inc()
		if !t.saveFailing { // once, not every second
			t.o.Logger.Warn().Err(err).Str("path", t.statePath()).Msg("saving tail offsets failed; lines may be read twice after a restart")
		}
		t.saveFailing = true
		return fmt.Errorf("capture: save tail offsets: %w", err)
	}
	if t.saveFailing {
		t.saveFailing = false
		t.o.Logger.Info().Str("path", t.statePath()).Msg("saving tail offsets works again")
	}
	t.dirty = false
	return nil
}

// updateHead hashes the file's first bytes once they have been read past.
func (tf *tailedFile) updateHead(offset int64) {
	n := int(min(offset, headBytes))
	if n <= tf.headLen {
		return
	}
	if h, ok := tf.hashHead(n); ok {
		tf.headLen, tf.headHash = n, h
	}
}

// matchesHead reports whether the open file starts as the saved one did.
func (tf *tailedFile) matchesHead(s savedFile) bool {
	if s.HeadLen == 0 {
		return true
	}
	h, ok := tf.hashHead(s.HeadLen)
	return ok && h == s.HeadHash
}

func (tf *tailedFile) hashHead(n int) (string, bool) {
	buf := make([]byte, n)
	if _, err := tf.f.ReadAt(buf, 0); err != nil {
		return "", false
	}
	h := fnv.New64a()
	h.Write(buf)
	return fmt.Sprintf("%016x", h.Sum64()), true
}

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}
}

// writeFileAtomic replaces path with b: a reader sees the old or the new
// content, never a mix, even after a crash.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename itself durable
		d.Close()
	}
	return nil
}
