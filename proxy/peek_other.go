//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

// peekAlive cannot peek on this platform; bodyless requests still retry
// once on a fresh connection when a pooled one turns out closed.
func peekAlive(fd uintptr, buf []byte) bool { return true }
