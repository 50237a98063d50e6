//go:build !linux

package spool

// fsyncer calls fsync(2): the asynchronous path is Linux's (fsync_linux.go).
type fsyncer struct{}

func newFsyncer() *fsyncer                 { return &fsyncer{} }
func (*fsyncer) sync(f writableFile) error { return f.Sync() }
func (*fsyncer) close()                    {}
