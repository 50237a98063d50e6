package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/config"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	for name := range config.Commands {
		code, out, _ := runCLI(name, "--help")
		if code != 0 {
			t.Errorf("%s --help exit %d", name, code)
		}
		if !strings.Contains(out, "Usage: replaylink "+name) || !strings.Contains(out, "--config") {
			t.Errorf("%s --help:\n%s", name, out)
		}
	}
	code, out, _ := runCLI("--help")
	if code != 0 || !strings.Contains(out, "replaylink run [flags] -- CMD") {
		t.Errorf("top help exit %d:\n%s", code, out)
	}
}

func TestCommandLineMistakes(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"serv"}, `unknown command "serv"`},
		{[]string{"run", "--upstream", "http://127.0.0.1:1"}, "no command to start"},
		{[]string{"serve", "python3", "app.py"}, "replaylink run [flags] -- CMD"},
		{[]string{"lookup"}, "exactly one SESSION_ID"},
		{[]string{"serve", "--listen", "8080"}, "--listen"},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(c.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%q: stderr %q lacks %q", c.args, errOut, c.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "replaylink ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestHelpListsOnlyWhatTheCommandUses: every flag setup, check and lookup
// take (and list in --help) changes what the command does: set to another
// value than its default, it changes the options the command derives from
// its configuration. A flag that changes nothing would be a flag the
// command ignores.
func TestHelpListsOnlyWhatTheCommandUses(t *testing.T) {
	derived := map[string]func(c *config.Config) any{
		"setup":  func(c *config.Config) any { return setupOptions(c) },
		"check":  func(c *config.Config) any { return setupOptions(c) },
		"lookup": func(c *config.Config) any { return []any{lookupOptions(c, "1"), clientOptions(c)} },
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, derive := range derived {
		cmd := config.Commands[name]
		base, _, err := config.Load(cmd, nil, func(string) string { return "" }, nil)
		if err != nil {
			t.Fatal(err)
		}
		var help bytes.Buffer
		if _, _, err := config.Load(cmd, []string{"--help"}, func(string) string { return "" }, &help); err != config.ErrHelp {
			t.Fatal(err)
		}
		for _, f := range cmd.Flags() {
			if !strings.Contains(help.String(), "--"+f.Name) {
				t.Errorf("%s --help does not list --%s", name, f.Name)
			}
			args := []string{"--" + f.Name, otherValue(f, secretFile)}
			if f.Name == "es-password" || f.Name == "es-password-file" {
				args = append(args, "--es-username", "u") // a password alone is no credential
			}
			c, _, err := config.Load(cmd, args, func(string) string { return "" }, nil)
			if err != nil {
				t.Errorf("%s %s: %v", name, args, err)
				continue
			}
			if reflect.DeepEqual(derive(c), derive(base)) {
				t.Errorf("%s takes --%s (and --help lists it), but it changes nothing the command uses", name, f.Name)
			}
		}
		for _, serveOnly := range []string{"--workers", "--flush-bytes", "--spool-dir", "--output", "--memory-store", "--listen", "--log-level"} {
			if h := help.String(); strings.Contains(h, "\n  "+serveOnly+" ") || strings.Contains(h, "\n  "+serveOnly+"\n") {
				t.Errorf("%s --help lists %s, which only serve and run use", name, serveOnly)
			}
		}
	}
}

// otherValue is a valid value of f that is not its default.
func otherValue(f config.Flag, file string) string {
	switch {
	case strings.HasSuffix(f.Name, "-file") || f.Name == "es-ca-cert":
		return file
	case f.Name == "es-url":
		return "http://127.0.0.1:1"
	case f.Name == "admin":
		return "127.0.0.1:1"
	case f.Name == "index":
		return "other"
	case f.Name == "es-replicas":
		return "2"
	case f.Default == "false" || f.Default == "":
		if d, err := time.ParseDuration(f.Default); err == nil {
			return (d + time.Second).String()
		}
		if f.Default == "false" {
			return "true"
		}
		return "x"
	case f.Default == "true":
		return "false"
	}
	if n, err := strconv.Atoi(f.Default); err == nil {
		return strconv.Itoa(n + 1)
	}
	if d, err := time.ParseDuration(f.Default); err == nil {
		return (d + time.Second).String()
	}
	return "x"
}
