package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/config"
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
