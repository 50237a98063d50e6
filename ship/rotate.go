package ship

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

var (
	outputRotations    = metrics.GetOrCreateCounter(`replaylink_output_rotations_total`)
	outputRotateErrors = metrics.GetOrCreateCounter(`replaylink_output_rotate_errors_total`)
	// Old files past --output-keep, deleted by a rotation: their documents
	// were written and acknowledged, and are gone from this host now.
	outputRemovedFiles = metrics.GetOrCreateCounter(`replaylink_output_removed_files_total`)
	outputRemovedBytes = metrics.GetOrCreateCounter(`replaylink_output_removed_bytes_total`)
)

// OutputFileOptions configure an OutputFile.
type OutputFileOptions struct {
	Path string
	// MaxBytes is the size past which the file is rotated; 0 never rotates.
	MaxBytes int64
	// Keep is how many rotated files (Path.1 newest ... Path.Keep oldest)
	// are kept; at least 1 when MaxBytes is set.
	Keep   int
	Logger zerolog.Logger
}

// OutputFile is the embedded default's --output file: documents appended as
// JSON lines, rotated by size. Before a write that would take the file past
// MaxBytes, the file is renamed to Path.1 (Path.1 to Path.2, and so on) and
// a new one is started, so a write (one shipment, whole lines) is never split
// across files and nothing is dropped by rotating: only the oldest file,
// past Keep, is deleted, and that is counted and logged. A rotation that
// fails (a rename refused) is counted and logged and writing goes on into
// the current file, past the size: documents are worth more than the cap.
// A single write larger than MaxBytes goes whole into a fresh file.
type OutputFile struct {
	o OutputFileOptions

	mu      sync.Mutex
	f       *os.File
	size    int64
	failing bool // the last rotation failed; logged once until one works
}

// OpenOutputFile opens (appends to) o.Path, creating it and its directory.
func OpenOutputFile(o OutputFileOptions) (*OutputFile, error) {
	if o.MaxBytes < 0 || (o.MaxBytes > 0 && o.Keep < 1) {
		return nil, fmt.Errorf("output %s: rotation needs a size of at least 0 (0: never) and at least 1 file kept, not %d and %d", o.Path, o.MaxBytes, o.Keep)
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o750); err != nil {
		return nil, err
	}
	out := &OutputFile{o: o}
	if err := out.open(); err != nil {
		return nil, err
	}
	return out, nil
}

func (out *OutputFile) open() error {
	f, err := os.OpenFile(out.o.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	out.f, out.size = f, st.Size()
	return nil
}

// Write appends p (whole lines) to the file, rotating first when p would
// take it past MaxBytes.
func (out *OutputFile) Write(p []byte) (int, error) {
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.o.MaxBytes > 0 && out.size > 0 && out.size+int64(len(p)) > out.o.MaxBytes {
		out.rotate()
	}
	n, err := out.f.Write(p)
	out.size += int64(n)
	return n, err
}

// rotate shifts Path.k to Path.k+1 (the one at Keep is replaced, and
// counted), Path to Path.1, and starts a new Path.
func (out *OutputFile) rotate() {
	path, keep := out.o.Path, out.o.Keep
	oldest := path + "." + strconv.Itoa(keep)
	removed, err := os.Stat(oldest)
	if err == nil {
		err = os.Remove(oldest)
	} else if errors.Is(err, fs.ErrNotExist) {
		removed, err = nil, nil
	}
	for k := keep - 1; k >= 1 && err == nil; k-- {
		err = os.Rename(path+"."+strconv.Itoa(k), path+"."+strconv.Itoa(k+1))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if removed != nil {
		outputRemovedFiles.Inc()
		outputRemovedBytes.Add(int(removed.Size()))
		out.o.Logger.Info().Str("file", oldest).Int64("bytes", removed.Size()).Int("output_keep", keep).
			Msg("ship: deleted the oldest rotated output file (--output-keep)")
	}
	if err == nil {
		err = os.Rename(path, path+".1")
	}
	if err == nil {
		old := out.f
		if err = out.open(); err == nil {
			old.Close()
		} else {
			out.f = old // still open under Path.1: write there rather than lose anything
		}
	}
	if err != nil {
		outputRotateErrors.Inc()
		if !out.failing {
			out.o.Logger.Error().Err(err).Str("file", path).Msg("ship: cannot rotate the output file; writing on past --output-max-bytes")
		}
		out.failing = true
		return
	}
	if out.failing {
		out.o.Logger.Info().Str("file", path).Msg("ship: rotating the output file again")
	}
	out.failing = false
	outputRotations.Inc()
}

// Close closes the current file.
func (out *OutputFile) Close() error {
	out.mu.Lock()
	defer out.mu.Unlock()
	return out.f.Close()
}
