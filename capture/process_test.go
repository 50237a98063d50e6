package capture

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a child process with exact, known output.
const childModeEnv = "CAPTURE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childModeEnv) == "exact" {
		writeExactOutput()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// exactOutput is what the "exact" child writes: awkward bytes, CRLF, invalid
// UTF-8, a 200 KB line, and a last line without newline.
func exactOutput(stream string) []byte {
	var b bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&b, "%s line %d \xff\xfe\r\n", stream, i)
		if i%50 == 0 {
			b.WriteString("\x00\x1b[31mcolour\x1b[0m\n\n")
		}
	}
	b.WriteString(strings.Repeat("L", 200<<10) + "\n")
	b.WriteString(stream + " no newline at the end")
	return b.Bytes()
}

// writeExactOutput writes both streams interleaved, in odd-sized pieces.
func writeExactOutput() {
	out, errOut := exactOutput("out"), exactOutput("err")
	for i := 0; len(out) > 0 || len(errOut) > 0; i++ {
		n := 1 + (i*7919)%4093
		k := min(n, len(out))
		os.Stdout.Write(out[:k])
		out = out[k:]
		k = min(n/2+1, len(errOut))
		os.Stderr.Write(errOut[:k])
		errOut = errOut[k:]
	}
}

// syncBuffer is a pass-through target that tests can read while it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProcess(t *testing.T, p *Process) {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		p.Wait()
	})
}

func waitExit(t *testing.T, p *Process) int {
	t.Helper()
	type result struct {
		code int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		ch <- result{code, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Wait: %v", r.err)
		}
		return r.code
	case <-time.After(20 * time.Second):
		t.Fatal("the child never exited")
		return 0
	}
}

func TestProcessCapturesBothStreams(t *testing.T) {
	sink := newRecordSink()
	var out, errOut syncBuffer
	p := &Process{
		Command: []string{"sh", "-c", `echo out1; echo err1 >&2; echo out2; printf 'err2\r\n' >&2; printf tail; exit 3`},
		Stdout:  &out, Stderr: &errOut, Sink: sink,
	}
	startProcess(t, p)
	if code := waitExit(t, p); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	equalStrings(t, "stdout lines", sink.texts(Stdout), []string{"out1", "out2", "tail"})
	equalStrings(t, "stderr lines", sink.texts(Stderr), []string{"err1", "err2"})
	for _, r := range sink.all() {
		if r.Origin != "" || r.Truncated || r.Time.IsZero() {
			t.Errorf("line %+v: want no origin, not truncated, a time", r)
		}
	}
	if got := out.String(); got != "out1\nout2\ntail" {
		t.Errorf("stdout passed through as %q", got)
	}
	if got := errOut.String(); got != "err1\nerr2\r\n" {
		t.Errorf("stderr passed through as %q", got)
	}
}

func TestProcessPassThroughIsExact(t *testing.T) {
	sink := newRecordSink()
	var out, errOut syncBuffer
	const max = 1 << 10
	p := &Process{
		Command: []string{os.Args[0]},
		Env:     append(os.Environ(), childModeEnv+"=exact"),
		Stdout:  &out, Stderr: &errOut, Sink: sink, MaxLineBytes: max,
		ForwardSignals: []os.Signal{},
	}
	startProcess(t, p)
	if code := waitExit(t, p); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, s := range []struct {
		stream Stream
		name   string
		passed string
	}{{Stdout, "out", out.String()}, {Stderr, "err", errOut.String()}} {
		want := exactOutput(s.name)
		if s.passed != string(want) {
			t.Errorf("%v passed through differs: %d bytes, want %d", s.stream, len(s.passed), len(want))
		}
		var lines []string
		for _, g := range referenceLines(want, max) {
			lines = append(lines, g.text)
		}
		equalStrings(t, s.stream.String()+" lines", sink.texts(s.stream), lines)
	}
	truncated := 0
	for _, r := range sink.all() {
		if r.Truncated {
			truncated++
		}
	}
	if truncated != 2 {
		t.Errorf("%d truncated lines, want the 200 KB line of each stream", truncated)
	}
}

// notifyWriter signals the first write.
type notifyWriter struct {
	syncBuffer
	once  sync.Once
	wrote chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	w.once.Do(func() { close(w.wrote) })
	return n, err
}

func TestProcessPassesPartialLinesWithoutWaiting(t *testing.T) {
	out := &notifyWriter{wrote: make(chan struct{})}
	p := &Process{Command: []string{"sh", "-c", `printf 'prompt> '; exec sleep 30`}, Stdout: out, Sink: newRecordSink()}
	startProcess(t, p)
	select {
	case <-out.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("a partial line was not passed through while the child ran")
	}
	if got := out.String(); got != "prompt> " {
		t.Fatalf("passed through %q", got)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, p); code != 128+9 {
		t.Fatalf("killed child: exit code %d, want 137", code)
	}
}

func TestProcessExitCodes(t *testing.T) {
	for _, c := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 42", 42},
		{"kill -TERM $$", 128 + 15},
		{"kill -KILL $$", 128 + 9},
	} {
		t.Run(c.script, func(t *testing.T) {
			p := &Process{Command: []string{"sh", "-c", c.script}, Sink: newRecordSink()}
			startProcess(t, p)
			if code := waitExit(t, p); code != c.want {
				t.Fatalf("exit code %d, want %d", code, c.want)
			}
		})
	}
}

// A trap script that says when it is ready and which signal it got.
const trapScript = `trap 'echo got-hup; exit 5' HUP; trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`

func TestProcessForwardsSignalsToItsGroup(t *testing.T) {
	sink := newRecordSink()
	p := &Process{Command: []string{"sh", "-c", trapScript}, Sink: sink}
	startProcess(t, p)
	sink.waitText(t, "ready")
	// As kubelet or a terminal would: the signal goes to replaylink.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, p); code != 5 {
		t.Fatalf("exit code %d, want 5 from the HUP trap", code)
	}
	equalStrings(t, "lines", sink.texts(Stdout), []string{"ready", "got-hup"})
}

func TestProcessSignal(t *testing.T) {
	sink := newRecordSink()
	p := &Process{Command: []string{"sh", "-c", trapScript}, Sink: sink, ForwardSignals: []os.Signal{}}
	startProcess(t, p)
	sink.waitText(t, "ready")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, p); code != 7 {
		t.Fatalf("exit code %d, want 7 from the TERM trap", code)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling an exited child: %v", err)
	}
}

func TestProcessRestartOnFailure(t *testing.T) {
	dir := t.TempDir()
	sink := newRecordSink()
	p := &Process{
		Command: []string{"sh", "-c", `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo run $n; [ $n -ge 3 ] && exit 0; exit 1`},
		Dir:     dir, Sink: sink, Restart: RestartOnFailure, RestartDelay: time.Millisecond,
	}
	startProcess(t, p)
	if code := waitExit(t, p); code != 0 {
		t.Fatalf("exit code %d, want 0 from the third run", code)
	}
	equalStrings(t, "lines", sink.texts(Stdout), []string{"run 1", "run 2", "run 3"})
}

func TestProcessNoRestartOnceStopped(t *testing.T) {
	sink := newRecordSink()
	p := &Process{
		Command: []string{"sh", "-c", `echo start; exec sleep 30`},
		Sink:    sink, Restart: RestartAlways, RestartDelay: time.Millisecond, ForwardSignals: []os.Signal{},
	}
	startProcess(t, p)
	sink.waitText(t, "start")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, p); code != 128+15 {
		t.Fatalf("exit code %d, want 143", code)
	}
	equalStrings(t, "lines", sink.texts(Stdout), []string{"start"})
}

func TestProcessStartErrors(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		command []string
		code    int
	}{
		{[]string{"replaylink-no-such-command"}, 127},
		{[]string{notExec}, 126},
	} {
		err := (&Process{Command: c.command, Sink: newRecordSink()}).Start()
		var se *StartError
		if !errors.As(err, &se) || se.ExitCode != c.code {
			t.Errorf("%v: got %v, want a StartError with code %d", c.command, err, c.code)
		}
	}
	if err := (&Process{Sink: newRecordSink()}).Start(); err == nil || !strings.Contains(err.Error(), "after --") {
		t.Errorf("no command: %v", err)
	}
}

// A grandchild holding stdout open must not keep Wait from returning.
func TestProcessDrainTimeout(t *testing.T) {
	sink := newRecordSink()
	p := &Process{Command: []string{"sh", "-c", `sleep 30 & echo $!`}, Sink: sink, DrainTimeout: 100 * time.Millisecond}
	startProcess(t, p)
	code := waitExit(t, p)
	lines := sink.texts(Stdout)
	if len(lines) == 1 {
		if pid, err := strconv.Atoi(lines[0]); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if code != 0 || len(lines) != 1 {
		t.Fatalf("exit code %d, lines %q", code, lines)
	}
}

func TestProcessLongLineIsCutButPassedWhole(t *testing.T) {
	sink := newRecordSink()
	var out syncBuffer
	p := &Process{Command: []string{"sh", "-c", `printf '%0100d\nafter\n' 7`}, Stdout: &out, Sink: sink, MaxLineBytes: 16}
	startProcess(t, p)
	waitExit(t, p)
	lines := sink.all()
	if len(lines) != 2 || lines[0].Text != strings.Repeat("0", 16) || !lines[0].Truncated || lines[1].Text != "after" {
		t.Fatalf("lines %+v", lines)
	}
	if got := out.String(); len(got) != 107 {
		t.Fatalf("passed through %d bytes, want all 107", len(got))
	}
}

func TestRestartPolicyText(t *testing.T) {
	for in, want := range map[string]RestartPolicy{"never": RestartNever, "on-failure": RestartOnFailure, "always": RestartAlways} {
		var got RestartPolicy
		if err := got.UnmarshalText([]byte(in)); err != nil || got != want || got.String() != in {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	var r RestartPolicy
	if err := r.UnmarshalText([]byte("unless-stopped")); err == nil || !strings.Contains(err.Error(), `"unless-stopped" is not one of never, on-failure, always`) {
		t.Errorf("unknown policy: %v", err)
	}
	if err := (&Process{Command: []string{"true"}, Sink: discardSink{}, Restart: RestartPolicy(5)}).Start(); err == nil || !strings.Contains(err.Error(), "--restart 5") {
		t.Errorf("Start took RestartPolicy(5): %v", err)
	}
}
