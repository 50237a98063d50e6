package main

import (
	"io"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/enrich"
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
		ClientBodyMinRate:     clientBodyMinRate(c.ClientBodyMinRate),
		MaxConnsPerClient:     c.MaxConnsPerClient,
		MaxConnsPerUpstream:   c.MaxConnsPerUpstream,
		MaxFails:              c.MaxFails,
		FailCooldown:          c.FailCooldown,
		CORSAddSessionHeader:  c.CORSAddSessionHeader,
		ErrorBodyBytes:        errorBodyBytes(c.ErrorBodyBytes),
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

// errorBodyBytes maps the flag (0 keeps nothing) to proxy's option (0 means
// the default, negative keeps nothing).
func errorBodyBytes(b config.ByteSize) int {
	if b == 0 {
		return -1
	}
	return int(b)
}

// clientBodyMinRate maps the flag (0: the timeout alone) to proxy's option
// (0 means the default, negative none).
func clientBodyMinRate(b config.ByteSize) int64 {
	if b == 0 {
		return -1
	}
	return int64(b)
}

// enrichOptions maps the config to the pipeline's options; isRun says that
// replaylink starts the backend (run) and captures its output.
func enrichOptions(c *config.Config, isRun bool, pub enrich.Publisher, log zerolog.Logger) enrich.Options {
	return enrich.Options{
		ServiceName:      c.ServiceName,
		Mark:             c.Mark,
		MarkInfoLimit:    c.MarkInfoLimit,
		AttributionGrace: c.AttributionGrace,
		PushedLinesOnly:  !isRun && len(c.Tail) == 0, // lines only from POST /ingest, if ever
		QueueSize:        c.EventQueue,
		Publisher:        pub,
		Logger:           log.With().Str("component", "enrich").Logger(),
	}
}

func tailerOptions(c *config.Config, sink capture.Sink, log zerolog.Logger) capture.TailerOptions {
	return capture.TailerOptions{
		Paths:         c.Tail,
		StateDir:      c.SpoolDir,
		Sink:          sink,
		MaxLineBytes:  int(c.MaxLineBytes),
		FromBeginning: c.TailFromStart,
		Logger:        log.With().Str("component", "tail").Logger(),
	}
}

func clientOptions(c *config.Config) ship.ClientOptions {
	return ship.ClientOptions{
		URLs:          c.ESURLs,
		APIKey:        c.ESAPIKey,
		Username:      c.ESUsername,
		Password:      c.ESPassword,
		CACertFile:    c.ESCACert,
		CAFingerprint: c.ESCAFingerprint,
		Insecure:      c.ESInsecure,
	}
}

func setupOptions(c *config.Config) setup.Options {
	return setup.Options{
		Client:     clientOptions(c),
		Index:      c.Index,
		DataStream: c.DataStream,
		Retention:  c.Retention,
		APIKeys:    c.APIKeys,
	}
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
		InstallTemplate: c.ESSetup,
		Compression:     ship.Compression(c.ESCompression),
		Output:          out,
		MemoryDocs:      c.MemoryStore,
		Logger:          log.With().Str("component", "ship").Logger(),
	}
}
