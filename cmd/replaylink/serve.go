package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/lookup"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
)

// enrichFlushTime bounds enrich's final flush into the spool on shutdown.
const enrichFlushTime = 3 * time.Second

// server is one running replaylink: the pipeline (ship <- enrich <- proxy,
// capture) and its listeners. start brings the parts up consumer first, so
// nothing is produced before what takes it exists; stop takes them down in
// the reverse order, so everything produced is flushed or kept in the spool.
type server struct {
	c    *config.Config
	base zerolog.Logger // the parts add their component to it
	log  zerolog.Logger // serve's own messages

	closeOutput func()
	shipper     *ship.Shipper
	enricher    *enrich.Enricher
	px          *proxy.Proxy
	proxyLn     net.Listener
	proxyErr    chan error
	admin       *http.Server
	adminLn     net.Listener

	cancelInputs context.CancelFunc
	tailDone     chan struct{}

	proc      *capture.Process
	childCode chan int // the backend's exit code, once it exited for good
	// hooksDir and hookNonce: the runtime hooks, when the backend's lines
	// come from them (see hookSetup); a zero nonce: no hooks.
	hooksDir  string
	hookNonce hooks.Nonce
}

// serve runs replaylink until a signal, or until the child (replaylink run)
// exits, and returns the process exit code.
func serve(c *config.Config, child []string, stdout, stderr io.Writer) int {
	if len(c.Upstreams) == 0 {
		fmt.Fprintln(stderr, "replaylink: no backend to proxy to: give --upstream URL (REPLAYLINK_UPSTREAM), e.g. --upstream http://127.0.0.1:5000")
		return 2
	}
	base := newLogger(stderr, c.LogLevel, c.LogFormat)
	s := &server{c: c, base: base, log: base.With().Str("component", "replaylink").Logger(), childCode: make(chan int, 1)}
	if err := s.start(child, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "replaylink: %v\n", err)
		s.stop(false)
		return 2
	}
	s.log.Info().Str("listen", s.proxyLn.Addr().String()).Str("admin", s.adminLn.Addr().String()).
		Strs("upstream", c.Upstreams).Bool("elasticsearch", len(c.ESURLs) > 0).Msg("replaylink started")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	exitCode, exited := 0, false
	select {
	case sig := <-signals:
		s.log.Info().Str("signal", sig.String()).Dur("grace", c.GracePeriod).Msg("shutting down")
	case exitCode = <-s.childCode:
		exited = true
		s.log.Info().Int("exit_code", exitCode).Msg("backend exited; shutting down")
	case err := <-s.proxyErr:
		s.log.Error().Err(err).Msg("proxy stopped")
		exitCode = 1
	}
	if code, waited := s.stop(exited); waited {
		exitCode = code
	}
	return exitCode
}

// start brings replaylink up. On error, stop releases what was started.
func (s *server) start(child []string, stdout, stderr io.Writer) error {
	c, log := s.c, s.base
	out, closeOut, err := openOutput(c, child != nil, stdout, log)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	s.closeOutput = closeOut
	if s.shipper, err = ship.New(shipOptions(c, out, log)); err != nil {
		return err
	}
	if s.hooksDir, s.hookNonce, err = hookSetup(c, child != nil); err != nil {
		return err
	}
	eo := enrichOptions(c, child != nil, !s.hookNonce.IsZero(), s.shipper, log)
	if eo.ServiceName == "" {
		eo.ServiceName = defaultServiceName(c.Upstreams, child)
	}
	if s.enricher, err = enrich.New(eo); err != nil {
		return err
	}
	s.enricher.Start()
	if s.px, err = proxy.New(proxyOptions(c, s.enricher, log)); err != nil {
		return err
	}

	admin, err := s.adminHandler()
	if err != nil {
		return err
	}
	if s.adminLn, err = net.Listen("tcp", c.AdminListen); err != nil {
		return fmt.Errorf("admin listener --admin %s: %w", c.AdminListen, err)
	}
	s.admin = adminServer(c, admin)
	go s.admin.Serve(s.adminLn)

	if s.proxyLn, err = net.Listen("tcp", c.Listen); err != nil {
		return fmt.Errorf("proxy listener --listen %s: %w", c.Listen, err)
	}
	s.proxyErr = make(chan error, 1)
	go func() { s.proxyErr <- s.px.Serve(s.proxyLn) }()

	ctx, cancel := context.WithCancel(context.Background())
	s.cancelInputs = cancel
	s.tailDone = make(chan struct{})
	if len(c.Tail) == 0 {
		close(s.tailDone)
	} else {
		tailer, err := capture.NewTailer(tailerOptions(c, s.enricher, s.hookNonce, log))
		if err != nil {
			close(s.tailDone)
			return fmt.Errorf("--tail: %w", err)
		}
		go func() { defer close(s.tailDone); tailer.Run(ctx) }()
	}
	if child != nil {
		s.startChild(child, stdout, stderr)
	}
	return nil
}

// adminHandler builds the admin listener's routes: health and metrics
// always; lookup and ingest always mounted behind the access policy, which
// answers 403 with the reason and the fix when it keeps them off.
func (s *server) adminHandler() (http.Handler, error) {
	c, log := s.c, s.base
	policy, warning := adminPolicy(c)
	if warning != "" {
		s.log.Warn().Msg(warning)
	}
	lo := lookupHandlerOptions(c, s.shipper.MemoryStore(), log)
	if len(c.ESURLs) > 0 {
		es, err := esclient.New(clientOptions(c))
		if err != nil {
			return nil, err
		}
		lo.ES = es
	}
	routes := adminRoutes{
		ready:   s.px.Ready,
		protect: policy.Protect,
		lookup:  lookup.NewHandler(lo),
		ingest:  ingestHandler(c, s.enricher, s.hookNonce, log),
	}
	return routes.handler(), nil
}

// startChild starts the backend of replaylink run. A backend that cannot be
// started ends replaylink with a shell's exit code (127 not found, 126 not
// executable), through childCode like any exit.
func (s *server) startChild(child []string, stdout, stderr io.Writer) {
	env := childEnv(os.Environ())
	if !s.hookNonce.IsZero() {
		env = hooks.Env(env, s.hooksDir, s.hookNonce)
		if hooks.PythonIsolated(child) {
			s.log.Warn().Msg("the backend's Python runs with -I, -S or -E, which skip the runtime hook: its lines are attributed by request id, trace id or time only")
		}
	}
	s.proc = childProcess(s.c, s.enricher, s.hookNonce, s.base)
	s.proc.Command, s.proc.Env, s.proc.Stdin, s.proc.Stdout, s.proc.Stderr = child, env, os.Stdin, stdout, stderr
	if err := s.proc.Start(); err != nil {
		fmt.Fprintf(stderr, "replaylink: %v\n", err)
		code := 1
		var se *capture.StartError
		if errors.As(err, &se) {
			code = se.ExitCode
		}
		s.childCode <- code
		s.proc = nil
		return
	}
	go func() {
		code, err := s.proc.Wait()
		if err != nil {
			s.log.Error().Err(err).Msg("backend")
		}
		s.childCode <- code
	}()
}

// stop drains in the reverse order of start, within the grace period: the
// proxy stops accepting and finishes in-flight requests, the child (which got
// the signal directly) exits, inputs stop, enrich flushes its groups, and
// ship flushes what it can; the rest stays in the spool for the next start.
// It returns the backend's exit code when it had to wait for the backend.
func (s *server) stop(childExited bool) (code int, waited bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.GracePeriod)
	defer cancel()
	if s.px != nil && s.proxyLn != nil {
		if err := s.px.Shutdown(ctx); err != nil {
			s.log.Warn().Err(err).Msg("proxy did not drain within the grace period")
		}
	}
	if s.proc != nil && !childExited {
		select {
		case code = <-s.childCode:
		case <-ctx.Done():
			s.log.Warn().Msg("backend still running after the grace period; killing it")
			s.proc.Signal(syscall.SIGKILL)
			code = <-s.childCode
		}
		waited = true
	}
	if s.cancelInputs != nil {
		s.cancelInputs()
		<-s.tailDone
	}
	if s.enricher != nil {
		// enrich holds accepted events and lines in memory only, so it gets
		// time of its own even when the grace period was spent draining
		// requests; handing them to the spool is local work.
		flushCtx, cancelFlush := context.WithTimeout(context.Background(), enrichFlushTime)
		if err := s.enricher.Close(flushCtx); err != nil {
			s.log.Warn().Err(err).Msg("enrich could not hand everything to the spool")
		}
		cancelFlush()
	}
	if s.shipper != nil {
		if err := s.shipper.Close(ctx); err != nil {
			s.log.Warn().Err(err).Msg("not everything was shipped within the grace period; the rest stays in the spool for the next start")
		}
	}
	if s.admin != nil {
		s.admin.Close()
	} else if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.closeOutput != nil {
		s.closeOutput()
	}
	return code, waited
}

// openOutput opens outputPath: stdout, or a file rotated by size
// (--output-max-bytes, --output-keep); nil with Elasticsearch only.
func openOutput(c *config.Config, isRun bool, stdout io.Writer, log zerolog.Logger) (io.Writer, func(), error) {
	noop := func() {}
	switch path := outputPath(c, isRun); path {
	case "":
		return nil, noop, nil
	case "-":
		return stdout, noop, nil
	default:
		f, err := ship.OpenOutputFile(outputFileOptions(c, path, log))
		if err != nil {
			return nil, noop, err
		}
		return f, func() { f.Close() }, nil
	}
}

// childEnv is the backend's environment: replaylink's own, with Python's
// output unbuffered unless the user decided otherwise. Python buffers stdout
// to a pipe, which would print a request's lines after the request ended and
// defeat window attribution.
func childEnv(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONUNBUFFERED=") {
			return env
		}
	}
	return append(env, "PYTHONUNBUFFERED=1")
}
