//go:build linux

package spool

import (
	"os"
	"syscall"
	"unsafe"
)

// The housekeeper's fsyncs go through Linux AIO (IOCB_CMD_FSYNC, Linux 4.18
// and later) and its goroutine waits for them on an eventfd in the network
// poller. Why: a plain fsync(2) is a system call the Go scheduler expects to
// be short, so the goroutine keeps its processor (P) until the runtime's
// monitor thread notices and hands the P over, which takes from 20 µs to
// 10 ms depending on how long the monitor has been sleeping. With one P (a
// sidecar limited to one core, GOMAXPROCS=1) every request waits that long
// behind a 2-6 ms fsync; a runtime trace of replaylink at 7,000 requests/s
// showed the P held for 0.3 to 4.5 ms at every 200 ms fsync, no request
// running meanwhile. Waiting in the poller gives the P back at once. The
// kernel runs the fsync in a worker (vfs_fsync, the same call fsync(2)
// makes), so what reaches the disk, and when the wait ends, are unchanged.
//
// Where AIO cannot be set up (a seccomp profile refusing io_setup, the
// system's aio-max-nr reached) or refuses a file, fsyncer falls back to
// fsync(2) for good.

const (
	iocbCmdFsync  = 2
	iocbFlagResfd = 1
)

// iocb is struct iocb of linux/aio_abi.h, 64 bytes; the fields an fsync
// leaves zero are blank (aio_key and aio_rw_flags swap places on big-endian
// machines, which zeros do not mind).
type iocb struct {
	_      [2]uint64 // aio_data; aio_key and aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	_      [4]uint64 // aio_buf, aio_nbytes, aio_offset, aio_reserved2: unused by fsync
	flags  uint32
	resfd  uint32
}

// ioEvent is struct io_event: the request's data and iocb, its result (0 or
// a negative errno) and a second result.
type ioEvent struct {
	_   [2]uint64
	res int64
	_   int64
}

// fsyncer is owned by the housekeeper goroutine: one fsync at a time.
type fsyncer struct {
	ctx    uintptr  // aio_context_t; 0: fsync(2) directly
	done   *os.File // the eventfd the kernel counts completions on
	doneFd uint32   // its descriptor (done.Fd would make it blocking)
	cb     iocb
	ev     [1]ioEvent
}

func newFsyncer() *fsyncer {
	s := &fsyncer{}
	var ctx uintptr
	if _, _, e := syscall.Syscall(syscall.SYS_IO_SETUP, 4, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return s
	}
	fd, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Syscall(syscall.SYS_IO_DESTROY, ctx, 0, 0)
		return s
	}
	// A non-blocking descriptor: os.NewFile registers it with the poller, so a
	// Read parks the goroutine instead of the thread.
	s.ctx, s.done, s.doneFd = ctx, os.NewFile(fd, "spool-fsync-eventfd"), uint32(fd)
	return s
}

// sync makes f durable, as f.Sync does.
func (s *fsyncer) sync(f writableFile) error {
	if s.ctx == 0 {
		return f.Sync()
	}
	sc, ok := f.(syscall.Conn)
	if !ok {
		return f.Sync() // a test's file system
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var submitErr syscall.Errno
	if err := rc.Control(func(fd uintptr) { submitErr = s.submit(fd) }); err != nil {
		return f.Sync() // closed meanwhile: Sync says so in os's words
	}
	if submitErr != 0 {
		// EINVAL: this file (system) has no AIO fsync. Don't try again.
		s.close()
		return f.Sync()
	}
	res, err := s.wait()
	if err != nil {
		return err
	}
	if res < 0 {
		return &os.PathError{Op: "sync", Path: nameOf(f), Err: syscall.Errno(-res)}
	}
	return nil
}

func (s *fsyncer) submit(fd uintptr) syscall.Errno {
	s.cb = iocb{opcode: iocbCmdFsync, fildes: uint32(fd), flags: iocbFlagResfd, resfd: s.doneFd}
	cbs := [1]*iocb{&s.cb}
	n, _, e := syscall.Syscall(syscall.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
	if e == 0 && n != 1 {
		e = syscall.EAGAIN
	}
	return e
}

// wait parks the goroutine until the kernel signals the completion, then
// collects its result.
func (s *fsyncer) wait() (int64, error) {
	var b [8]byte
	for {
		n, _, e := syscall.Syscall6(syscall.SYS_IO_GETEVENTS, s.ctx, 0, 1,
			uintptr(unsafe.Pointer(&s.ev[0])), uintptr(unsafe.Pointer(&syscall.Timespec{})), 0)
		if e != 0 && e != syscall.EINTR {
			return 0, &os.SyscallError{Syscall: "io_getevents", Err: e}
		}
		if n == 1 {
			return s.ev[0].res, nil
		}
		// The count read is of no use: one fsync is in flight at most.
		if _, err := s.done.Read(b[:]); err != nil {
			return 0, err
		}
	}
}

func (s *fsyncer) close() {
	if s.ctx != 0 {
		syscall.Syscall(syscall.SYS_IO_DESTROY, s.ctx, 0, 0)
		s.done.Close()
		s.ctx, s.done = 0, nil
	}
}

func nameOf(f writableFile) string {
	if n, ok := f.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}
