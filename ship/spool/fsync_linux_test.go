//go:build linux

package spool

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

func TestFsyncerThroughAIO(t *testing.T) {
	s := newFsyncer()
	defer s.close()
	if s.ctx == 0 {
		t.Skip("Linux AIO is not available here (io_setup refused): fsync(2) is used, as the fallback test checks")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // more than one: a completion must not be read as the next one's
		if _, err := f.Write([]byte("record\n")); err != nil {
			t.Fatal(err)
		}
		if err := s.sync(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if s.ctx == 0 {
		t.Fatal("a regular file fell back to fsync(2)")
	}
	d, err := os.Open(filepath.Dir(f.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sync(d); err != nil {
		t.Fatalf("sync of the directory: %v", err)
	}
	d.Close()
	f.Close()
	if err := s.sync(f); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("sync of a closed file: %v, want os.ErrClosed as f.Sync says", err)
	}
}

func TestFsyncerFallsBackWhenAIORefusesAFile(t *testing.T) {
	s := newFsyncer()
	defer s.close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// A pipe has no fsync: AIO refuses it at submission, fsync(2) with EINVAL.
	if err := s.sync(w); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("sync of a pipe: %v, want EINVAL", err)
	}
	if s.ctx != 0 {
		t.Fatal("still using AIO after it refused a file")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.sync(f); err != nil {
		t.Fatalf("fsync(2) after the fallback: %v", err)
	}
}

func TestAIOStructSizes(t *testing.T) {
	if n := unsafe.Sizeof(iocb{}); n != 64 {
		t.Fatalf("iocb is %d bytes; the kernel's struct iocb is 64", n)
	}
	if n := unsafe.Sizeof(ioEvent{}); n != 32 {
		t.Fatalf("ioEvent is %d bytes; the kernel's struct io_event is 32", n)
	}
}
