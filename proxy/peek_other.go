//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

// peekIdle cannot look at a socket on this platform. Reusing a connection
// unchecked could hand one client's bytes to another, so none is reused.
func peekIdle(fd uintptr, buf []byte) reuseRefusal { return refuseUnchecked }
