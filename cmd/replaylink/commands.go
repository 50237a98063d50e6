package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/lookup"
	"github.com/replaylink/replaylink/ship"
	"github.com/replaylink/replaylink/ship/setup"
)

// interruptible returns a context cancelled by SIGINT or SIGTERM.
func interruptible(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

func setupCommand(c *config.Config, stdout, stderr io.Writer) int {
	if len(c.ESURLs) == 0 {
		fmt.Fprintln(stderr, "replaylink setup: no Elasticsearch to set up: give --es-url (REPLAYLINK_ES_URL)")
		return 2
	}
	ctx, cancel := interruptible(5 * time.Minute)
	defer cancel()
	return setup.Run(ctx, stdout, setupOptions(c))
}

func checkCommand(c *config.Config, stdout, stderr io.Writer) int {
	if len(c.ESURLs) == 0 {
		fmt.Fprintln(stderr, "replaylink check: nothing to check: give --es-url (REPLAYLINK_ES_URL)")
		return setup.ExitMisconfigured
	}
	ctx, cancel := interruptible(2 * time.Minute)
	defer cancel()
	return setup.Check(ctx, stdout, setupOptions(c))
}

func lookupCommand(c *config.Config, session string, stdout, stderr io.Writer) int {
	o := lookup.CLIOptions{
		Session:    session,
		JSON:       c.JSON,
		Limit:      c.Limit,
		Index:      c.Index,
		AdminURL:   lookup.AdminBaseURL(c.AdminListen),
		AdminToken: c.AdminToken,
	}
	if len(c.ESURLs) > 0 {
		es, err := ship.NewClient(clientOptions(c))
		if err != nil {
			fmt.Fprintf(stderr, "replaylink lookup: %v\n", err)
			return lookup.CLIFailed
		}
		o.ES = es
	}
	ctx, cancel := interruptible(time.Minute)
	defer cancel()
	return lookup.RunCLI(ctx, stdout, stderr, o)
}
