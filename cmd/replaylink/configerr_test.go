package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/config"
)

// goIdentifier matches an exported Go name with an inner capital
// (MaxHeaderBytes, Options.Publisher): what a user never typed.
var goIdentifier = regexp.MustCompile(`\b[A-Z][a-z]+[A-Z][A-Za-z]*\b`)

// productNames are spelled like Go names but are not.
var productNames = map[string]bool{"OpenReplay": true, "OpenSearch": true, "OpenTelemetry": true}

// TestPackagesTakeWhatConfigTakes: a value config accepts must not be
// refused later by a package's own checks, whose messages name Go fields
// (MaxHeaderBytes, QueueSize) instead of flags. Each flag of serve is tried
// with edge values; whatever config lets through, proxy and enrich must
// take too.
func TestPackagesTakeWhatConfigTakes(t *testing.T) {
	values := []string{"0", "-1", "1", "1023", "1000001", "17MiB", "1TiB", "0s", "-1s", "1ns", "2s", "100h",
		"x y", "a/b", "http://127.0.0.1:1/path", "http://127.0.0.1:1?q=1", strings.Repeat("u", 129)}
	log := zerolog.Nop()
	base := []string{"--upstream", "http://127.0.0.1:1"}
	for _, f := range config.Commands["serve"].Flags() {
		for _, v := range values {
			args := append(append([]string(nil), base...), "--"+f.Name, v)
			if f.Name == "upstream" {
				args = []string{"--upstream", v}
			}
			cfg, _, err := config.Load(config.Commands["serve"], args, func(string) string { return "" }, nil)
			if err != nil {
				if m := goIdentifier.FindString(err.Error()); m != "" && !productNames[m] {
					t.Errorf("--%s %q: the error names %s, not a flag: %v", f.Name, v, m, err)
				}
				continue
			}
			po := proxyOptions(cfg, nopObserver{}, log)
			eo := enrichOptions(cfg, true, false, nopPublisher{}, log)
			for pkg, err := range map[string]error{"proxy": po.Validate(), "enrich": eo.Validate()} {
				if err != nil {
					t.Errorf("--%s %q: config took it, %s refuses it: %v", f.Name, v, pkg, err)
				}
			}
		}
	}
	// Several upstreams, as a list.
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("http://127.0.0.1:%d", 1000+i)
	}
	if cfg, _, err := config.Load(config.Commands["serve"], []string{"--upstream", strings.Join(many, ",")}, func(string) string { return "" }, nil); err == nil {
		if po := proxyOptions(cfg, nopObserver{}, log); po.Validate() != nil {
			t.Errorf("65 upstreams: config took them, proxy refuses them: %v", po.Validate())
		}
	}
}
