package ship

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLines writes n shipments of lines to out, each one Write (as
// the output destination does), and returns all the bytes written.
func writeLines(t *testing.T, out *OutputFile, n, perShipment int, prefix string) []byte {
	t.Helper()
	var all []byte
	for i := range n {
		var b []byte
		for j := range perShipment {
			b = fmt.Appendf(b, `{"message":"%s-%04d-%d"}`+"\n", prefix, i, j)
		}
		if _, err := out.Write(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// kept reads path.Keep ... path.1, path: the files oldest first.
func kept(t *testing.T, path string, keep int) (files [][]byte) {
	t.Helper()
	for k := keep + 2; k >= 0; k-- {
		name := path
		if k > 0 {
			name = fmt.Sprintf("%s.%d", path, k)
		}
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if k > keep {
			t.Errorf("%s exists: more than %d rotated files kept", name, keep)
		}
		files = append(files, b)
	}
	return files
}

// Rotation renames, it does not drop: what is in the files plus what the
// oldest-file deletions counted is exactly what was written, in order,
// every file is at most the cap, and no shipment is split across files.
func TestOutputFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "docs.ndjson")
	out, err := OpenOutputFile(OutputFileOptions{Path: path, MaxBytes: 200, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	rotations, removedFiles, removedBytes := outputRotations.Get(), outputRemovedFiles.Get(), outputRemovedBytes.Get()
	const shipments = 40
	all := writeLines(t, out, shipments, 2, "a") // shipments of equal size
	shipment := len(all) / shipments
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	files := kept(t, path, 3)
	if len(files) != 4 {
		t.Fatalf("%d files, want the current one and 3 rotated", len(files))
	}
	joined := bytes.Join(files, nil)
	gone := int(outputRemovedBytes.Get() - removedBytes)
	if gone+len(joined) != len(all) || !bytes.Equal(all[gone:], joined) {
		t.Fatalf("files hold %d bytes and %d were counted as deleted, of %d written; the kept ones are not the last written, in order", len(joined), gone, len(all))
	}
	for i, f := range files {
		if len(f) > 200 || len(f)%shipment != 0 {
			t.Errorf("file %d holds %d bytes: over the 200-byte cap, or a shipment was split", i, len(f))
		}
	}
	perFile := 200 / shipment
	started := (shipments + perFile - 1) / perFile
	if r, d := outputRotations.Get()-rotations, outputRemovedFiles.Get()-removedFiles; r != uint64(started-1) || d != uint64(started-4) {
		t.Errorf("%d rotations and %d deleted files counted, want %d and %d (%d files of %d shipments)", r, d, started-1, started-4, started, perFile)
	}
}

// 0 never rotates.
func TestOutputFileWithoutRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs.ndjson")
	out, err := OpenOutputFile(OutputFileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	all := writeLines(t, out, 100, 5, "n")
	out.Close()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, all) {
		t.Errorf("file holds %d bytes, want the %d written", len(got), len(all))
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("rotated without a size: %v", err)
	}
}

// A file already over the size at start is rotated before the first
// write; a shipment larger than the size goes whole into a fresh file.
func TestOutputFileExistingAndOversize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs.ndjson")
	old := bytes.Repeat([]byte("{\"old\":1}\n"), 50)
	os.WriteFile(path, old, 0o640)
	out, err := OpenOutputFile(OutputFileOptions{Path: path, MaxBytes: 100, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	big := writeLines(t, out, 1, 10, "big") // 280 bytes, one shipment
	small := writeLines(t, out, 1, 1, "s")
	out.Close()
	files := kept(t, path, 2)
	if len(files) != 3 || !bytes.Equal(files[0], old) || !bytes.Equal(files[1], big) || !bytes.Equal(files[2], small) {
		t.Errorf("files %q, want the old content, the big shipment whole, then the small one", files)
	}
}

// A rotation that fails is counted and logged, and writing goes on in the
// current file: nothing is dropped.
func TestOutputFileRotationFailureKeepsWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "docs.ndjson")
	// path.1 a non-empty directory: it can be neither deleted nor replaced.
	os.MkdirAll(filepath.Join(path+".1", "x"), 0o750)
	out, err := OpenOutputFile(OutputFileOptions{Path: path, MaxBytes: 100, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	errs := outputRotateErrors.Get()
	all := writeLines(t, out, 10, 1, "f")
	out.Close()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, all) {
		t.Errorf("file holds %q, want all %d bytes written", got, len(all))
	}
	if n := outputRotateErrors.Get() - errs; n == 0 {
		t.Error("failed rotations not counted")
	}
}

func TestOutputFileRefusesNoKeptFiles(t *testing.T) {
	_, err := OpenOutputFile(OutputFileOptions{Path: filepath.Join(t.TempDir(), "x"), MaxBytes: 100})
	if err == nil || !strings.Contains(err.Error(), "at least 1 file kept") {
		t.Errorf("Keep 0 with a size: %v", err)
	}
}
