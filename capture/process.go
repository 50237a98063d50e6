package capture

// Process runs the backend as replaylink's child (replaylink run -- CMD).
//
// Goroutines: Start launches a supervisor (waits for the child, restarts it
// under the restart policy, closes done), a signal forwarder, and for each run
// of the child one reader per output stream. The supervisor owns exitCode and
// err until it closes done; mu guards cmd and stopping, which Signal (any
// goroutine) reads and the supervisor writes.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/internal/choice"
	"github.com/rs/zerolog"
)

// DefaultForwardSignals are the signals replaylink passes on to the child.
var DefaultForwardSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT}

// RestartPolicy says what happens when the child exits on its own
// (--restart). Its zero value is RestartNever.
type RestartPolicy uint8

const (
	// RestartNever: the child's exit is final, like a container entrypoint;
	// Wait returns its exit code and replaylink exits with it.
	RestartNever RestartPolicy = iota
	// RestartOnFailure: a child exiting with a code other than 0 (or killed
	// by a signal it was not sent through replaylink) is started again.
	RestartOnFailure
	// RestartAlways: the child is started again however it exits.
	RestartAlways
)

var restartNames = []string{"never", "on-failure", "always"}

func (r RestartPolicy) String() string { return choice.Name(r, restartNames) }

// UnmarshalText takes never, on-failure or always.
func (r *RestartPolicy) UnmarshalText(b []byte) error { return choice.Parse(r, b, restartNames) }

const (
	defaultRestartDelay = time.Second
	maxRestartDelay     = 30 * time.Second
	// A child that ran this long before exiting was healthy for a while:
	// the next restart waits RestartDelay again instead of the doubled delay.
	restartResetAfter  = time.Minute
	defaultDrainTimout = 2 * time.Second
)

// Process starts a command, passes its output through unchanged and hands
// each output line to Sink. Set the fields, then call Start and Wait.
type Process struct {
	Command []string  // program and arguments (the program is looked up in PATH)
	Env     []string  // child's environment; nil: replaylink's own
	Dir     string    // working directory; "": replaylink's own
	Stdin   io.Reader // child's stdin; nil: /dev/null. Use os.Stdin to share replaylink's.

	// Stdout and Stderr receive the child's output byte for byte as soon as
	// it is read (replaylink's own os.Stdout and os.Stderr, so kubectl logs
	// still shows it); nil: not passed on. If both are the same writer it
	// must be safe for concurrent use (os.Stdout is).
	Stdout, Stderr io.Writer

	Sink         Sink // required
	MaxLineBytes int  // DefaultMaxLineBytes when 0

	// HookNonce is the nonce of the runtime hooks in the child (see package
	// hooks); zero: no hooks. Their marks are taken off each line (into
	// Line.Hook) and off what is passed through, so Stdout and Stderr get
	// the child's bytes as they were without the hooks.
	HookNonce hooks.Nonce

	// ForwardSignals are passed on to the child's process group while it
	// runs; nil: DefaultForwardSignals; empty non-nil: none.
	ForwardSignals []os.Signal

	Restart      RestartPolicy
	RestartDelay time.Duration // first restart delay, doubled on each quick failure up to 30s; default 1s

	// DrainTimeout bounds how long the child's output is still read after it
	// exited, for when something it started keeps its stdout open. Default 2s.
	DrainTimeout time.Duration

	Logger zerolog.Logger // zero value: no logging

	sigCh chan os.Signal
	stop  chan struct{} // closed once a stopping signal was sent
	done  chan struct{} // closed when the child has exited for good

	mu       sync.Mutex
	cmd      *exec.Cmd // the running child; nil between runs
	stopping bool

	exitCode int
	err      error
}

// StartError is returned when the command cannot be started. ExitCode is what
// a shell would exit with: 127 when the program is not found, 126 otherwise.
type StartError struct {
	Command  string
	ExitCode int
	Err      error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("cannot start the backend %q: %v (check the command after --, PATH and execute permission)", e.Command, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

var errStopping = errors.New("capture: not restarting the backend: replaylink is stopping it")

// Start starts the child and the forwarding of signals. An error is a
// *StartError, or names a missing field.
func (p *Process) Start() error {
	if len(p.Command) == 0 {
		return errors.New("capture: no command to run: give it after --, e.g. replaylink run -- python3 app.py")
	}
	if p.Sink == nil {
		return errors.New("capture: Process.Sink is nil")
	}
	if err := choice.Check("--restart", p.Restart, restartNames); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if p.done != nil {
		return errors.New("capture: Process started twice")
	}
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	run, err := p.startChild()
	if err != nil {
		return err
	}
	sigs := p.ForwardSignals
	if sigs == nil {
		sigs = DefaultForwardSignals
	}
	if len(sigs) > 0 {
		p.sigCh = make(chan os.Signal, 4)
		signal.Notify(p.sigCh, sigs...)
		go p.forward()
	}
	go p.supervise(run)
	return nil
}

// Wait blocks until the child has exited for good and all its output was
// handed to the Sink. The exit code is the child's, or 128+N when signal N
// killed it, as a shell reports it. err is set only when a restart of the
// child failed (a *StartError; the code is then 126 or 127).
func (p *Process) Wait() (exitCode int, err error) {
	if p.done == nil {
		return 0, errors.New("capture: Process.Wait before Start")
	}
	<-p.done
	return p.exitCode, p.err
}

// Signal sends sig to the child's process group. SIGTERM, SIGINT, SIGQUIT and
// SIGKILL also stop restarts: after one of them the child's exit is final.
// Signalling a child that already exited is not an error.
func (p *Process) Signal(sig os.Signal) error {
	if p.done == nil {
		return errors.New("capture: Process.Signal before Start")
	}
	ssig, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("capture: cannot send %v to the backend", sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ssig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL:
		if !p.stopping {
			p.stopping = true
			close(p.stop)
		}
	}
	if p.cmd == nil {
		return nil
	}
	// The child's pid is its process group id (Setpgid). Until the
	// supervisor clears p.cmd under mu, the child is not reaped, so the
	// group id cannot have been reused.
	if err := syscall.Kill(-p.cmd.Process.Pid, ssig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("capture: send %v to the backend: %w", sig, err)
	}
	return nil
}

// childRun is one run of the child.
type childRun struct {
	cmd     *exec.Cmd
	pipes   [2]*os.File // read ends of stdout and stderr
	readers sync.WaitGroup
	started time.Time
}

func (p *Process) startChild() (*childRun, error) {
	cmd := exec.Command(p.Command[0], p.Command[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdin = p.Env, p.Dir, p.Stdin
	// Its own process group: a terminal's Ctrl-C reaches it once, through
	// us, and forwarded signals reach what a wrapper script started too.
	cmd.SysProcAttr = childSysProcAttr()
	// Bounds Wait when Stdin is not a file and its copy does not end.
	cmd.WaitDelay = p.drainTimeout()

	// Our own pipes (not StdoutPipe) so that their read ends stay ours to
	// drain after the child exits, with a deadline.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("capture: stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("capture: stderr pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW

	p.mu.Lock()
	if p.stopping {
		err = errStopping
	} else if err = cmd.Start(); err == nil {
		p.cmd = cmd
	}
	p.mu.Unlock()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if err == errStopping {
			return nil, err
		}
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return nil, &StartError{Command: p.Command[0], ExitCode: code, Err: err}
	}
	p.Logger.Debug().Int("pid", cmd.Process.Pid).Str("command", p.Command[0]).Msg("backend started")

	run := &childRun{cmd: cmd, pipes: [2]*os.File{outR, errR}, started: time.Now()}
	run.readers.Add(2)
	go p.capture(run, outR, Stdout, p.Stdout)
	go p.capture(run, errR, Stderr, p.Stderr)
	return run, nil
}

// capture reads one output stream of the child until it ends.
func (p *Process) capture(run *childRun, pipe *os.File, s Stream, pass io.Writer) {
	defer run.readers.Done()
	defer pipe.Close()
	var lr *LineReader
	if pass != nil && !p.HookNonce.IsZero() {
		pass = &hooks.StripWriter{W: pass, Nonce: p.HookNonce}
	}
	if pass != nil {
		pt := &passThrough{r: pipe, w: pass, stream: s, log: &p.Logger}
		lr = NewLineReader(pt, p.MaxLineBytes)
		lr.arrival = pt.arrival
	} else {
		lr = NewLineReader(pipe, p.MaxLineBytes)
	}
	defer lr.Release()
	l := Line{Stream: s}
	for {
		err := lr.Next(&l)
		if err == nil {
			deliver(p.Sink, &l, p.HookNonce)
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.Logger.Warn().Str("stream", s.String()).
				Msg("the backend exited but a process it started still holds its output open; no longer reading it")
		} else if err != io.EOF {
			p.Logger.Warn().Err(err).Str("stream", s.String()).Msg("reading the backend's output failed")
		}
		break
	}
	if lr.Final(&l) {
		deliver(p.Sink, &l, p.HookNonce)
	}
	if sw, ok := pass.(*hooks.StripWriter); ok {
		if err := sw.Flush(); err != nil {
			passthroughFailed[s].Add(1)
		}
	}
}

// supervise waits for each run of the child and decides whether to restart.
func (p *Process) supervise(run *childRun) {
	delay := p.restartDelay()
	for {
		p.exitCode = p.waitRun(run)
		if !p.shouldRestart(p.exitCode) {
			break
		}
		if time.Since(run.started) >= restartResetAfter {
			delay = p.restartDelay()
		}
		p.Logger.Warn().Int("exit_code", p.exitCode).Dur("delay", delay).Msg("the backend exited; restarting it")
		select {
		case <-p.stop:
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRestartDelay)
		next, err := p.startChild()
		if err == errStopping {
			break
		}
		if err != nil {
			p.Logger.Error().Err(err).Msg("restarting the backend failed")
			var se *StartError
			if errors.As(err, &se) {
				p.exitCode = se.ExitCode
			}
			p.err = err
			break
		}
		childRestarts.Inc()
		run = next
	}
	if p.sigCh != nil {
		signal.Stop(p.sigCh) // no more sends once it returns
		close(p.sigCh)
	}
	close(p.done)
}

// waitRun waits for the child to exit and for its output to be handed on.
func (p *Process) waitRun(run *childRun) int {
	err := run.cmd.Wait()
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	deadline := time.Now().Add(p.drainTimeout())
	for _, f := range run.pipes {
		f.SetReadDeadline(deadline) // fails only if the reader already closed it
	}
	run.readers.Wait()
	code := exitCode(run.cmd.ProcessState)
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		p.Logger.Warn().Err(err).Msg("waiting for the backend")
	}
	p.Logger.Debug().Int("exit_code", code).Msg("backend exited")
	return code
}

func (p *Process) shouldRestart(code int) bool {
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	switch {
	case stopping:
		return false
	case p.Restart == RestartAlways:
		return true
	case p.Restart == RestartOnFailure:
		return code != 0
	}
	return false
}

// forward passes received signals on to the child until the supervisor ends.
func (p *Process) forward() {
	for sig := range p.sigCh {
		p.Logger.Debug().Str("signal", sig.String()).Msg("forwarding signal to the backend")
		if err := p.Signal(sig); err != nil {
			p.Logger.Warn().Err(err).Msg("forwarding a signal")
		}
	}
}

func (p *Process) restartDelay() time.Duration {
	if p.RestartDelay > 0 {
		return p.RestartDelay
	}
	return defaultRestartDelay
}

func (p *Process) drainTimeout() time.Duration {
	if p.DrainTimeout > 0 {
		return p.DrainTimeout
	}
	return defaultDrainTimout
}

// exitCode is the code a shell reports: 128+N for death by signal N.
func exitCode(ps *os.ProcessState) int {
	if ps == nil { // Wait failed before the child was reaped
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// passThrough copies what is read from the child to one of replaylink's own
// outputs, unchanged and before it is split into lines. If that output
// fails (e.g. closed), capture goes on without it.
type passThrough struct {
	r      io.Reader
	w      io.Writer
	stream Stream
	log    *zerolog.Logger
	at     time.Time // when the latest read returned, before the write
	failed bool
}

func (pt *passThrough) Read(b []byte) (int, error) {
	n, err := pt.r.Read(b)
	if n > 0 {
		// A line's time is when it arrived, not after a slow write.
		pt.at = time.Now()
		written := 0
		if !pt.failed {
			var werr error
			written, werr = pt.w.Write(b[:n])
			if werr != nil {
				pt.failed = true
				pt.log.Warn().Err(werr).Str("stream", pt.stream.String()).
					Msg("cannot pass the backend's output through any longer; it is still captured")
			}
		}
		if written < n {
			passthroughFailed[pt.stream].Add(n - written)
		}
	}
	return n, err
}

func (pt *passThrough) arrival() time.Time { return pt.at }
