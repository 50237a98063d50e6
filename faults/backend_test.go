package faults

import (
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// backend is a testbackend process replaylink serve proxies to.
type backend struct {
	Addr string
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startBackend runs testbackend on a free 127.0.0.1 port. With delay it
// listens only after that long (and startBackend does not wait for it);
// flags are more of testbackend's flags.
func startBackend(t testing.TB, delay time.Duration, flags ...string) *backend {
	t.Helper()
	addr := estest.FreeAddr(t)
	b := &backend{Addr: addr, URL: "http://" + addr, done: make(chan struct{})}
	b.cmd = exec.Command(backendBin, append([]string{"-listen", addr, "-delay", delay.String()}, flags...)...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	})
	if delay == 0 {
		if _, ok := waitFor(10*time.Second, func() bool { return dialable(addr) }); !ok {
			t.Fatalf("test backend did not listen on %s", addr)
		}
	}
	return b
}

// backendCommand is the command line of a backend for replaylink run.
func backendCommand(addr string) []string {
	return []string{backendBin, "-listen", addr}
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
