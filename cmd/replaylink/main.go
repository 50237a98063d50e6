// Command replaylink ties backend logs and errors to OpenReplay session
// replays through Elasticsearch, with no change to the backend's code.
//
// The commands wire the pipeline packages: proxy (requests) and capture
// (backend output) feed enrich (documents, attribution), which feeds ship
// (spool, bulk, Elasticsearch). See docs/architecture.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/replaylink/replaylink/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `replaylink shows backend errors next to OpenReplay session replays.

Usage:
  replaylink serve [flags]                 reverse proxy that records each request with its session
  replaylink run [flags] -- CMD [ARGS...]  serve, and also start CMD and capture what it prints
  replaylink setup [flags]                 set up Elasticsearch (template, retention, API keys) for OpenReplay
  replaylink check [flags]                 check the whole path to Elasticsearch and OpenReplay's query
  replaylink lookup [flags] SESSION_ID     print a session's backend logs
  replaylink hooks install DIR             put the runtime hooks in DIR for an app container (sidecars)
  replaylink version                       print the version

'replaylink COMMAND --help' lists a command's flags. Every flag can also be set
by an environment variable REPLAYLINK_<FLAG> or in a YAML file given with --config.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "hooks":
		return hooksCommand(rest, stdout, stderr)
	}
	cmd, ok := config.Commands[name]
	if !ok {
		fmt.Fprintf(stderr, "replaylink: unknown command %q\n\n%s", name, usage)
		return 2
	}
	cfg, left, err := config.Load(cmd, rest, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "replaylink %s: %v\n", name, err)
		return 2
	}
	for _, w := range config.UnknownEnvironment(os.Environ()) {
		fmt.Fprintf(stderr, "replaylink %s: warning: %s\n", name, w)
	}
	switch name {
	case "serve":
		if len(left) > 0 {
			fmt.Fprintf(stderr, "replaylink serve: unexpected arguments %q; to start a backend use 'replaylink run [flags] -- CMD'\n", left)
			return 2
		}
		return serve(cfg, nil, stdout, stderr)
	case "run":
		if len(left) == 0 {
			fmt.Fprintln(stderr, "replaylink run: no command to start; usage: replaylink run [flags] -- CMD [ARGS...]")
			return 2
		}
		return serve(cfg, left, stdout, stderr)
	case "setup":
		return setupCommand(cfg, stdout, stderr)
	case "check":
		return checkCommand(cfg, stdout, stderr)
	case "lookup":
		if len(left) != 1 {
			fmt.Fprintln(stderr, "replaylink lookup: give exactly one SESSION_ID, e.g. replaylink lookup 7204916803563247")
			return 2
		}
		return lookupCommand(cfg, left[0], stdout, stderr)
	}
	return 2
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return fmt.Sprintf("replaylink %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
