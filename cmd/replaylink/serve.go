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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/lookup"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
)

// serve runs the proxy and the pipeline behind it until a signal, or until
// the child (replaylink run) exits. Start order is ship -> enrich -> inputs,
// so nothing is produced before its consumer exists; stop order is the
// reverse, so everything produced is flushed (or kept in the spool).
func serve(c *config.Config, child []string, stdout, stderr io.Writer) int {
	log := newLogger(stderr, c.LogLevel, c.LogFormat)
	if len(c.Upstreams) == 0 {
		fmt.Fprintln(stderr, "replaylink: no backend to proxy to: give --upstream URL (REPLAYLINK_UPSTREAM), e.g. --upstream http://127.0.0.1:5000")
		return 2
	}

	out, closeOut, err := openOutput(c, child != nil, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "replaylink: --output: %v\n", err)
		return 2
	}
	defer closeOut()

	shipper, err := ship.New(shipOptions(c, out, log))
	if err != nil {
		fmt.Fprintf(stderr, "replaylink: %v\n", err)
		return 2
	}
	pipe, err := enrich.New(enrichOptions(c, shipper, log))
	if err != nil {
		shipper.Close(context.Background())
		fmt.Fprintf(stderr, "replaylink: %v\n", err)
		return 2
	}
	pipe.Start()

	px, err := proxy.New(proxyOptions(c, pipe, log))
	if err != nil {
		fmt.Fprintf(stderr, "replaylink: %v\n", err)
		return 2
	}

	// The admin listener: health and metrics always; lookup and ingest behind the policy.
	policy, warning := lookup.NewPolicy(c.AdminListen, c.AdminToken, c.AllowRemoteAdmin)
	if warning != "" {
		log.Warn().Msg(warning)
	}
	routes := adminRoutes{ready: px.Ready, protect: policy.Protect}
	{
		// Always mounted behind the policy: when it keeps them off, Protect
		// answers 403 with the reason and the fix rather than a bare 404.
		lo := lookup.Options{Recent: shipper.Store(), Index: c.Index, Logger: log.With().Str("component", "lookup").Logger()}
		if len(c.ESURLs) > 0 {
			es, err := ship.NewClient(clientOptions(c))
			if err != nil {
				fmt.Fprintf(stderr, "replaylink: %v\n", err)
				return 2
			}
			lo.ES = es
		}
		routes.lookup = lookup.NewHandler(lo)
		routes.ingest = &capture.IngestHandler{Sink: pipe, MaxLineBytes: int(c.MaxLineBytes), Logger: log.With().Str("component", "ingest").Logger()}
	}
	adminLn, err := net.Listen("tcp", c.AdminListen)
	if err != nil {
		fmt.Fprintf(stderr, "replaylink: admin listener --admin %s: %v\n", c.AdminListen, err)
		return 2
	}
	admin := &http.Server{Handler: routes.handler(), ReadHeaderTimeout: 10 * time.Second}
	go admin.Serve(adminLn)

	proxyLn, err := net.Listen("tcp", c.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "replaylink: proxy listener --listen %s: %v\n", c.Listen, err)
		return 2
	}
	proxyErr := make(chan error, 1)
	go func() { proxyErr <- px.Serve(proxyLn) }()

	ctx, cancelInputs := context.WithCancel(context.Background())
	defer cancelInputs()
	tailDone := make(chan struct{})
	if len(c.Tail) > 0 {
		tailer, err := capture.NewTailer(tailerOptions(c, pipe, log))
		if err != nil {
			fmt.Fprintf(stderr, "replaylink: --tail: %v\n", err)
			return 2
		}
		go func() { defer close(tailDone); tailer.Run(ctx) }()
	} else {
		close(tailDone)
	}

	var proc *capture.Process
	childCode := make(chan int, 1) // the backend's exit code, once it exited for good
	if child != nil {
		restart, _ := capture.ParseRestartPolicy(c.Restart) // validated with the config
		proc = &capture.Process{
			Command: child, Env: childEnv(os.Environ()), Stdin: os.Stdin, Stdout: stdout, Stderr: stderr,
			Sink: pipe, MaxLineBytes: int(c.MaxLineBytes), Restart: restart,
			Logger: log.With().Str("component", "run").Logger(),
		}
		if err := proc.Start(); err != nil {
			fmt.Fprintf(stderr, "replaylink: %v\n", err)
			code := 1
			var se *capture.StartError
			if errors.As(err, &se) {
				code = se.ExitCode
			}
			childCode <- code
			proc = nil
		} else {
			go func() {
				code, err := proc.Wait()
				if err != nil {
					log.Error().Err(err).Msg("backend")
				}
				childCode <- code
			}()
		}
	}
	log.Info().Str("listen", proxyLn.Addr().String()).Str("admin", adminLn.Addr().String()).
		Strs("upstream", c.Upstreams).Bool("elasticsearch", len(c.ESURLs) > 0).Msg("replaylink started")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	exitCode, exited := 0, false
	select {
	case s := <-signals:
		log.Info().Str("signal", s.String()).Dur("grace", c.GracePeriod).Msg("shutting down")
	case exitCode = <-childCode:
		exited = true
		log.Info().Int("exit_code", exitCode).Msg("backend exited; shutting down")
	case err := <-proxyErr:
		log.Error().Err(err).Msg("proxy stopped")
		exitCode = 1
	}
	if code, ok := shutdown(c, log, px, proc, childCode, exited, cancelInputs, tailDone, pipe, shipper, admin); ok {
		exitCode = code
	}
	return exitCode
}

// shutdown drains in the reverse order of start, within the grace period:
// the proxy stops accepting and finishes in-flight requests, the child (which
// got the signal directly) exits, inputs stop, enrich flushes its groups, and
// ship flushes what it can; the rest stays in the spool for the next start.
//
// It returns the backend's exit code when it had to wait for the backend.
func shutdown(c *config.Config, log zerolog.Logger, px *proxy.Proxy, proc *capture.Process, childCode <-chan int, exited bool,
	cancelInputs context.CancelFunc, tailDone <-chan struct{}, pipe *enrich.Pipeline, shipper *ship.Pipeline, admin *http.Server) (code int, waited bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.GracePeriod)
	defer cancel()
	if err := px.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("proxy did not drain within the grace period")
	}
	if proc != nil && !exited {
		select {
		case code = <-childCode:
		case <-ctx.Done():
			log.Warn().Msg("backend still running after the grace period; killing it")
			proc.Signal(syscall.SIGKILL)
			code = <-childCode
		}
		waited = true
	}
	cancelInputs()
	<-tailDone
	if err := pipe.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("enrich did not flush within the grace period")
	}
	if err := shipper.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("not everything was shipped within the grace period; the rest stays in the spool for the next start")
	}
	admin.Close()
	return code, waited
}

// openOutput picks where the embedded default writes documents: --output,
// else stdout for serve and a file in the spool dir for run (whose stdout
// carries the backend's own output). With --es-url there is no output.
func openOutput(c *config.Config, isRun bool, stdout io.Writer) (io.Writer, func(), error) {
	noop := func() {}
	if len(c.ESURLs) > 0 && c.Output == "" {
		return nil, noop, nil
	}
	path := c.Output
	if path == "" {
		if !isRun {
			return stdout, noop, nil
		}
		path = filepath.Join(c.SpoolDir, "documents.ndjson")
	}
	if path == "-" {
		return stdout, noop, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, noop, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, noop, err
	}
	return f, func() { f.Close() }, nil
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
