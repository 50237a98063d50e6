package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/admin"
	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/lookup"
	"github.com/replaylink/replaylink/memstore"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
	"github.com/replaylink/replaylink/ship/setup"
)

// This file maps the one user-facing Config to each package's options; a
// test pins the mapping so a flag cannot silently stop reaching its package.

func proxyOptions(c *config.Config, obs proxy.Observer, log zerolog.Logger) proxy.Options {
	return proxy.Options{
		Listen:                c.Listen,
		Upstreams:             c.Upstreams,
		UpstreamHost:          c.UpstreamHost,
		ConnectTimeout:        c.ConnectTimeout,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		IdleTimeout:           c.IdleTimeout,
		ClientHeaderTimeout:   c.ClientHeaderTimeout,
		MaxHeaderBytes:        int(c.MaxHeaderBytes),
		ClientBodyTimeout:     c.ClientBodyTimeout,
		ClientBodyMinRate:     int64(c.ClientBodyMinRate),
		MaxConnsPerClient:     c.MaxConnsPerClient,
		MaxConnsPerUpstream:   c.MaxConnsPerUpstream,
		MaxFails:              c.MaxFails,
		FailCooldown:          c.FailCooldown,
		CORSAddSessionHeader:  c.CORSAddSessionHeader,
		ErrorBodyBytes:        int(c.ErrorBodyBytes),
		RedactQueryParams:     c.RedactQueryParams,
		Sessions: proxy.SessionOptions{
			Sources:     c.SessionSources,
			Cookie:      c.SessionCookie,
			Query:       c.SessionQuery,
			TokenSecret: c.TokenSecret,
		},
		Observer: obs,
		Logger:   log.With().Str("component", "proxy").Logger(),
	}
}

// enrichOptions maps the config to the enricher's options; isRun says that
// replaylink starts the backend (run) and captures its output, hooked that
// its lines may carry the runtime hooks' marks.
func enrichOptions(c *config.Config, isRun, hooked bool, pub enrich.Publisher, log zerolog.Logger) enrich.Options {
	return enrich.Options{
		ServiceName:      c.ServiceName,
		Mark:             c.Mark,
		Sessionless:      c.Sessionless,
		MarkInfoLimit:    c.MarkInfoLimit,
		AttributionGrace: c.AttributionGrace,
		IgnoreMarkers:    !proxy.SessionOptions{Sources: c.SessionSources}.TrustsHeader(),
		Hooks:            hooked,
		PushedLinesOnly:  !isRun && len(c.Tail) == 0, // lines only from POST /ingest, if ever
		QueueSize:        c.EventQueue,
		Publisher:        pub,
		Logger:           log.With().Str("component", "enrich").Logger(),
	}
}

func tailerOptions(c *config.Config, sink capture.Sink, nonce hooks.Nonce, log zerolog.Logger) capture.TailerOptions {
	return capture.TailerOptions{
		Paths:         c.Tail,
		StateDir:      c.SpoolDir,
		Sink:          sink,
		MaxLineBytes:  int(c.MaxLineBytes),
		FromBeginning: c.TailFromStart,
		HookNonce:     nonce,
		Logger:        log.With().Str("component", "tail").Logger(),
	}
}

func clientOptions(c *config.Config) esclient.Options {
	return esclient.Options{
		URLs:             c.ESURLs,
		Discover:         c.ESDiscover,
		DiscoverInterval: c.ESDiscoverInterval,
		APIKey:           c.ESAPIKey,
		Username:         c.ESUsername,
		Password:         c.ESPassword,
		CACertFile:       c.ESCACert,
		CAFingerprint:    c.ESCAFingerprint,
		Insecure:         c.ESInsecure,
	}
}

func setupOptions(c *config.Config) setup.Options {
	return setup.Options{
		Client:     clientOptions(c),
		Index:      c.Index,
		DataStream: c.DataStream,
		Retention:  c.Retention,
		APIKeys:    c.APIKeys,
		Replicas:   replicas(c),
	}
}

// replicas is --es-replicas, checked by Validate.
func replicas(c *config.Config) ship.Replicas {
	if n, fixed, _ := c.Replicas(); fixed {
		return ship.FixedReplicas(n)
	}
	return ship.Replicas{}
}

func shipOptions(c *config.Config, out io.Writer, log zerolog.Logger) ship.Options {
	return ship.Options{
		SpoolDir:        c.SpoolDir,
		SpoolMaxBytes:   int64(c.SpoolMaxBytes),
		SyncInterval:    c.SpoolSyncInterval,
		FlushBytes:      int(c.FlushBytes),
		FlushInterval:   c.FlushInterval,
		Workers:         c.Workers,
		Client:          clientOptions(c),
		Index:           c.Index,
		DataStream:      c.DataStream,
		Replicas:        replicas(c),
		InstallTemplate: c.ESSetup,
		Compression:     c.ESCompression,
		Output:          out,
		MemoryStore:     c.MemoryStore,
		Logger:          log.With().Str("component", "ship").Logger(),
	}
}

// outputFileOptions are those of the --output file at path (never stdout).
func outputFileOptions(c *config.Config, path string, log zerolog.Logger) ship.OutputFileOptions {
	return ship.OutputFileOptions{
		Path:     path,
		MaxBytes: int64(c.OutputMaxBytes),
		Keep:     c.OutputKeep,
		Logger:   log.With().Str("component", "ship").Logger(),
	}
}

// lookupHandlerOptions are the admin lookup's, but for the Elasticsearch
// client. store is nil with --memory-store 0: lookup then gets no
// MemoryStore at all (a nil store inside the interface would be called)
// and says so in its answers.
func lookupHandlerOptions(c *config.Config, store *memstore.Store, log zerolog.Logger) lookup.Options {
	o := lookup.Options{Index: c.Index, Logger: log.With().Str("component", "lookup").Logger()}
	if store != nil {
		o.MemoryStore = store
	}
	return o
}

// adminServer is the admin listener's server. Its timeouts bound every
// connection: a client that sends its headers or body slowly, or keeps a
// connection open doing nothing, is cut off.
func adminServer(c *config.Config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.AdminHeaderTimeout,
		ReadTimeout:       c.AdminReadTimeout,
		IdleTimeout:       c.AdminIdleTimeout,
	}
}

// hooksDir is where the runtime hooks go, "" for none: with run, into
// --hooks-dir (default SPOOL_DIR/hooks); with serve and --hooks-dir, into
// that directory, shared with a sidecar's app container; never with
// --hooks off.
func hooksDir(c *config.Config, isRun bool) string {
	switch {
	case c.Hooks == hooks.ModeOff:
		return ""
	case isRun && c.HooksDir == "":
		return filepath.Join(c.SpoolDir, "hooks")
	}
	return c.HooksDir
}

// hookSetup installs the runtime hooks where hooksDir says, with a nonce of
// this run's (run) or the one kept in the shared directory (serve). A zero
// nonce means no hooks.
func hookSetup(c *config.Config, isRun bool) (dir string, nonce hooks.Nonce, err error) {
	if dir = hooksDir(c, isRun); dir == "" {
		return "", hooks.Nonce{}, nil
	}
	if isRun {
		nonce = hooks.NewNonce()
	} else if nonce, err = hooks.LoadOrCreateNonce(dir); err != nil {
		return "", hooks.Nonce{}, fmt.Errorf("--hooks-dir: %w", err)
	}
	if err := hooks.Install(dir); err != nil {
		return "", hooks.Nonce{}, fmt.Errorf("--hooks-dir: %w", err)
	}
	return dir, nonce, nil
}

// childProcess is the backend of run, as far as settings say: the caller
// adds its command line, environment and streams.
func childProcess(c *config.Config, sink capture.Sink, nonce hooks.Nonce, log zerolog.Logger) *capture.Process {
	return &capture.Process{
		Sink: sink, MaxLineBytes: int(c.MaxLineBytes), Restart: c.Restart, HookNonce: nonce,
		Logger: log.With().Str("component", "run").Logger(),
	}
}

// ingestHandler serves POST /ingest.
func ingestHandler(c *config.Config, sink capture.Sink, nonce hooks.Nonce, log zerolog.Logger) *capture.IngestHandler {
	return &capture.IngestHandler{Sink: sink, MaxLineBytes: int(c.MaxLineBytes), HookNonce: nonce,
		Logger: log.With().Str("component", "ingest").Logger()}
}

// adminPolicy guards lookup and ingest on the admin listener; the string
// is a warning to log.
func adminPolicy(c *config.Config) (*admin.Policy, string) {
	return admin.NewPolicy(c.AdminListen, c.AdminToken, c.AllowRemoteAdmin)
}

// outputPath is where documents go without Elasticsearch: "" nowhere (with
// --es-url and no --output), "-" stdout (serve's default), else a file
// (run's default: SPOOL_DIR/documents.ndjson, as its stdout carries the
// backend's).
func outputPath(c *config.Config, isRun bool) string {
	switch {
	case c.Output != "":
		return c.Output
	case len(c.ESURLs) > 0:
		return ""
	case isRun:
		return filepath.Join(c.SpoolDir, "documents.ndjson")
	}
	return "-"
}

// defaultServiceName is service.name when --service-name is not given, as
// its help says: the backend's command (run), else the first upstream's
// host (serve), so that every document has one.
func defaultServiceName(upstreams []string, child []string) string {
	if len(child) > 0 {
		return filepath.Base(child[0])
	}
	if len(upstreams) > 0 {
		if u, err := url.Parse(upstreams[0]); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	return ""
}
