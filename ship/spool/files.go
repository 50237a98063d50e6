package spool

import (
	"errors"
	"os"
	"syscall"
)

// fileSystem is what the spool creates and writes its files through: the
// operating system (osFS), or in tests one that runs out of space. Reads,
// renames and deletions go to package os directly: they need no room.
type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (writableFile, error)
}

// writableFile is a spool file open for writing.
type writableFile interface {
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (writableFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}

// noSpace reports whether err says the disk (or the user's quota) is full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
