package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/internal/estest"
)

// docsWithFlagTables are the documents whose tables name flags: README's
// main settings and proxy flags, and the full reference.
var docsWithFlagTables = []string{"../../README.md", "../../docs/configuration.md"}

var (
	codeSpan = regexp.MustCompile("`([^`]*)`")
	flagName = regexp.MustCompile("^--([a-z0-9-]+)$")
)

// documentedFlag is one flag named in a table, with the default the table
// gives: a literal (in backticks), or "" when the cell is empty or
// describes the default in words ("client's", "`-` for serve"), which is
// right only for a flag whose default is not a literal.
type documentedFlag struct {
	where, name, def string
}

// flagTables reads the Markdown tables of path whose first column is
// "flag", and returns each flag they name with its default.
func flagTables(t *testing.T, path string) []documentedFlag {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []documentedFlag
	inTable := false
	defCol := -1
	for i, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := splitRow(line)
		if !inTable {
			inTable = true
			defCol = -1
			if strings.EqualFold(cells[0], "flag") {
				for j, c := range cells {
					if strings.EqualFold(c, "default") {
						defCol = j
					}
				}
			}
			continue
		}
		if defCol < 0 || strings.HasPrefix(cells[0], "---") {
			continue
		}
		var names []string
		for _, m := range codeSpan.FindAllStringSubmatch(cells[0], -1) {
			if f := flagName.FindStringSubmatch(m[1]); f != nil {
				names = append(names, f[1])
			}
		}
		// "`60s` / `16KiB`" gives the defaults of "`--a` / `--b`" in turn.
		defs := strings.Split(cells[defCol], " / ")
		if len(defs) != len(names) {
			defs = make([]string, len(names))
			for j := range defs {
				defs[j] = cells[defCol]
			}
		}
		for j, n := range names {
			def := ""
			if m := codeSpan.FindStringSubmatch(defs[j]); m != nil && strings.TrimSpace(defs[j]) == m[0] {
				def = m[1]
			}
			out = append(out, documentedFlag{where: path + ":" + strconv.Itoa(i+1), name: n, def: def})
		}
	}
	return out
}

func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	// A "\|" inside a cell is not a column.
	parts := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(p, "\x00", "|"))
	}
	return parts
}

// TestReadmeFlagTables holds the documentation's flag tables to the binary:
// every flag a table names exists, with the default the table gives, and
// every flag a command defines is in a table.
func TestReadmeFlagTables(t *testing.T) {
	defined := map[string]config.Flag{}
	for _, cmd := range config.Commands {
		for _, f := range cmd.Flags() {
			defined[f.Name] = f
		}
	}
	documented := map[string]bool{}
	for _, path := range docsWithFlagTables {
		for _, d := range flagTables(t, path) {
			documented[d.name] = true
			f, ok := defined[d.name]
			if !ok {
				t.Errorf("%s: --%s is documented, but no command has it", d.where, d.name)
				continue
			}
			if d.def != f.Default {
				t.Errorf("%s: --%s's default is documented as %q, but it is %q", d.where, d.name, d.def, f.Default)
			}
		}
	}
	for name := range defined {
		if !documented[name] {
			t.Errorf("--%s is a flag, but no table in %v documents it", name, docsWithFlagTables)
		}
	}
}

// readmeText is README.md.
func readmeText(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// readmeCodeBlocks are README's fenced code blocks, "\"-continued lines joined.
func readmeCodeBlocks(t *testing.T) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(readmeText(t), "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, strings.ReplaceAll(strings.Join(cur, "\n"), "\\\n", " "))
				cur = nil
			}
			in = !in
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return blocks
}

func shell(t *testing.T, dir, cmd string) (string, int) {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out), code
}

// TestReadmeIngestCurl runs README's curl example for POST /ingest and
// checks the answer against the one README shows; and a plain curl
// --data-binary (curl's default form type) gets README's command back.
func TestReadmeIngestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	readme := readmeText(t)
	m := regexp.MustCompile("`(curl [^`]*/ingest)`").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README shows no curl command for /ingest")
	}
	shown := m[1]
	ans := regexp.MustCompile("answers `202 (\\{[^`]*\\})`").FindStringSubmatch(readme)
	if ans == nil {
		t.Fatal("README does not show /ingest's answer")
	}
	be := httptest.NewServer(http.NotFoundHandler())
	defer be.Close()
	in := startServe(t, "--upstream", be.URL, "--output", os.DevNull)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte("one\n{\"msg\":\"two\"}\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := strings.ReplaceAll(shown, "127.0.0.1:9090", in.admin)
	out, code := shell(t, dir, cmd+" -s -w ' %{http_code}'")
	out = strings.Replace(out, "\n ", " ", 1) // the answer is one JSON line
	want := strings.NewReplacer("N", "3", "M", "0").Replace(ans[1]) + " 202"
	if code != 0 || out != want {
		t.Errorf("%s answered %q, want %q (README: 202 %s)", shown, out, want, ans[1])
	}
	out, _ = shell(t, dir, "curl -s -w ' %{http_code}' --data-binary @app.log http://"+in.admin+"/ingest")
	if !strings.HasSuffix(out, " 415") || !strings.Contains(out, cmd) {
		t.Errorf("a plain curl --data-binary got %q; want 415 with README's command %q", out, cmd)
	}
}

// TestReadmeSetupAndCheck runs README's setup and check commands against
// the test search node (its URL for README's, a password file as README
// names) and holds README's sample output to the steps the binary prints.
// The node is OpenSearch: setup's --api-keys step fails there, as README
// says it does (API keys are Elasticsearch's).
func TestReadmeSetupAndCheck(t *testing.T) {
	esURL := estest.URL(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "elastic.pw"), []byte("changeme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var setupCmd, checkCmd, setupOut, checkOut string
	for _, b := range readmeCodeBlocks(t) {
		switch {
		case strings.HasPrefix(b, "replaylink setup "):
			setupCmd = strings.Join(strings.Fields(b), " ")
		case strings.HasPrefix(b, "replaylink check "):
			checkCmd = strings.Join(strings.Fields(b), " ")
		case strings.HasPrefix(b, "node:"):
			setupOut = b
		case strings.HasPrefix(b, "node reachable:"):
			checkOut = b
		}
	}
	if setupCmd == "" || checkCmd == "" || setupOut == "" || checkOut == "" {
		t.Fatal("README lacks setup's or check's command or sample output")
	}
	subst := strings.NewReplacer("replaylink ", binary+" ", "https://es.example.com:9200", esURL)
	steps := func(out string) []string {
		var names []string
		for _, l := range strings.Split(out, "\n") {
			if name, rest, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") && strings.HasPrefix(rest, " ") && !strings.Contains(name, " step") && len(name) < 20 {
				names = append(names, name)
			}
		}
		return names
	}

	out, code := shell(t, dir, subst.Replace(setupCmd))
	if code != 5 || !strings.Contains(out, "api keys:          failed: OpenSearch has no API keys") {
		t.Errorf("%s: exit %d, want 5 (api keys failed on OpenSearch):\n%s", setupCmd, code, out)
	}
	if got, want := steps(strings.Split(out, "\n\n")[0]), steps(setupOut); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("setup prints the steps %v, README shows %v", got, want)
	}
	out, code = shell(t, dir, subst.Replace(checkCmd))
	if code != 0 {
		t.Errorf("%s: exit %d:\n%s", checkCmd, code, out)
	}
	if got, want := steps(out), steps(checkOut); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("check prints the steps %v, README shows %v", got, want)
	}
	if !strings.Contains(out, "all checks passed: OpenReplay will find replaylink's documents of its sessions in logs") {
		t.Errorf("check's last line is not README's:\n%s", out)
	}
}
