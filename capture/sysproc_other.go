//go:build !linux

package capture

import "syscall"

// childSysProcAttr puts the backend in its own process group. Outside Linux
// there is no parent-death signal: a SIGKILLed replaylink leaves it running.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
