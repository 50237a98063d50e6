// This test is outside package proxy because config, whose --help it
// reads, imports proxy.
package proxy_test

import (
	"strings"
	"testing"

	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/proxy"
)

// --help lists the built-in names, exactly as the redactor has them.
func TestRedactHelpListsTheBuiltInNames(t *testing.T) {
	var usage strings.Builder
	_, _, err := config.Load(config.Command{Name: "serve", Groups: []string{"proxy"}}, []string{"--help"}, func(string) string { return "" }, &usage)
	if err != config.ErrHelp {
		t.Fatalf("--help: %v", err)
	}
	help := usage.String()
	i := strings.Index(help, "--redact-query-param")
	if i < 0 {
		t.Fatalf("--help has no --redact-query-param:\n%s", help)
	}
	line := help[i:]
	line = line[:strings.Index(line, "[$")]
	list := func(words []string) string {
		return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
	}
	for _, want := range []string{"names containing " + list(proxy.SensitiveQueryWords[:]), "names with the word " + list(proxy.SensitiveQueryNames[:])} {
		if !strings.Contains(line, want) {
			t.Errorf("--redact-query-param's help does not say %q:\n%s", want, line)
		}
	}
}
