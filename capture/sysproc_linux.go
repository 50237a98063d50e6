package capture

import "syscall"

// childSysProcAttr puts the backend in its own process group and has the
// kernel kill it when replaylink dies, even by SIGKILL or the OOM killer:
// an orphaned backend would keep its port, and the next replaylink run
// could not start it again.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
