//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import "syscall"

// peekIdle looks at an idle socket without consuming or waiting: a byte
// waiting means the upstream sent something after its last response, EOF
// or an error that it closed or reset the connection.
func peekIdle(fd uintptr, buf []byte) reuseRefusal {
	n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case n > 0:
		return refuseStrayBytes
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		return reuseOK
	}
	return refuseClosed
}
