package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/lookup"
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
	o := lookupOptions(c, session)
	if len(c.ESURLs) > 0 {
		es, err := esclient.New(clientOptions(c))
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

// lookupOptions are lookup's settings, but for the Elasticsearch client
// (clientOptions).
func lookupOptions(c *config.Config, session string) lookup.CLIOptions {
	return lookup.CLIOptions{
		Session:    session,
		JSON:       c.JSON,
		Limit:      c.Limit,
		Index:      c.Index,
		AdminURL:   lookup.AdminBaseURL(c.AdminListen),
		AdminToken: c.AdminToken,
	}
}

const hooksUsage = `Usage: replaylink hooks install DIR

Installs replaylink's runtime hooks for Python and Node backends in DIR, with
the nonce their marks carry (DIR/nonce, kept if it is there), for a backend
that replaylink does not start itself: an app container beside a replaylink
sidecar. Set in the backend's environment:

  PYTHONPATH=DIR/python
  NODE_OPTIONS=--require=DIR/node/replaylink-hook.js
  REPLAYLINK_HOOK_NONCE_FILE=DIR/nonce

and run replaylink with --hooks-dir DIR --tail FILE (the file the backend
writes), so that it reads the marks. 'replaylink serve --hooks-dir DIR'
installs them too; this command is for an init container that must run
before the app. 'replaylink run' needs neither: it hooks its child itself
(--hooks auto).
`

// hooksCommand runs 'replaylink hooks install DIR'.
func hooksCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		fmt.Fprint(stdout, hooksUsage)
		return 0
	}
	if len(args) != 2 || args[0] != "install" {
		fmt.Fprintf(stderr, "replaylink hooks: unexpected arguments %q\n\n%s", args, hooksUsage)
		return 2
	}
	dir := args[1]
	if err := hooks.Install(dir); err != nil {
		fmt.Fprintf(stderr, "replaylink hooks install: %v\n", err)
		return 1
	}
	if _, err := hooks.LoadOrCreateNonce(dir); err != nil {
		fmt.Fprintf(stderr, "replaylink hooks install: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "installed the runtime hooks in %s; in the backend's environment set:\n", dir)
	for _, kv := range hooks.FileEnv(dir) {
		fmt.Fprintf(stdout, "  %s\n", kv)
	}
	return 0
}
