package config

import (
	"fmt"
	"strings"
)

// notSettings are REPLAYLINK_* variables that are not settings but are
// read by name elsewhere: the config file's path, the runtime hooks' nonce
// (set in an app container, see package capture/hooks), and those of the
// test search node and cluster and make test, soak and bench (testenv/,
// faults/); so are the prefixes in notSettingPrefixes.
var notSettings = map[string]bool{
	"REPLAYLINK_CONFIG": true, "REPLAYLINK_HOOK_NONCE": true, "REPLAYLINK_HOOK_NONCE_FILE": true,
	"REPLAYLINK_ARTIFACTS": true, "REPLAYLINK_ES_STATE": true, "REPLAYLINK_ES_PORT": true, "REPLAYLINK_SOAK": true,
	"REPLAYLINK_CLUSTER_STATE": true, "REPLAYLINK_CLUSTER_PORT": true, // testenv/es/cluster.sh
}

var notSettingPrefixes = [...]string{"REPLAYLINK_TEST_", "REPLAYLINK_FAULTS_"}

// UnknownEnvironment names the REPLAYLINK_* variables in environ (KEY=VALUE
// entries, as os.Environ gives them) that no setting reads, each with the
// setting it may have meant: a misspelled variable would otherwise be
// ignored without a word.
func UnknownEnvironment(environ []string) []string {
	all := fields()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "REPLAYLINK_") || notSettings[name] || hasAnyPrefix(name, notSettingPrefixes[:]) {
			continue
		}
		known, best, bestDist := false, "", 3
		for _, f := range all {
			if f.env == name {
				known = true
				break
			}
			if d := editDistance(name, f.env); d < bestDist {
				best, bestDist = f.env, d
			}
		}
		if known {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is not a replaylink setting and is ignored", name)
		if best != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", best)
		}
		out = append(out, msg)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
