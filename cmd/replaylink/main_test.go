package main

import (
	"bytes"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands {
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
