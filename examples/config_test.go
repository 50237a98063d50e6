// Package examples_test checks that the deployment examples (Kubernetes
// manifests, docker-compose.yml, Dockerfiles) are wired to what replaylink
// really takes: every REPLAYLINK_* variable exists in package config, the
// values load through config.Load, and ports, probes and secrets line up.
package examples_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/config"
)

// serveCommand is `replaylink serve` and `run` as cmd/replaylink declares them.
var serveCommand = config.Commands["serve"]

// validEnv is every environment variable replaylink reads, derived from the
// config package the same way it derives them (config.EnvName of each flag).
func validEnv(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{config.EnvPrefix + "CONFIG": true}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if flag := f.Tag.Get("flag"); flag != "" {
				names[config.EnvName(flag)] = true
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}))
	if len(names) < 20 || !names["REPLAYLINK_ES_URL"] {
		t.Fatalf("derived only %d variable names from package config: %v", len(names), names)
	}
	return names
}

// checkEnvNames fails for each REPLAYLINK_* name that replaylink does not read.
func checkEnvNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	valid := validEnv(t)
	for name := range env {
		if strings.HasPrefix(name, config.EnvPrefix) && !valid[name] {
			t.Errorf("%s: %s is not a replaylink setting (see config/config.go; the variable of --flag-name is REPLAYLINK_FLAG_NAME)", where, name)
		}
	}
}

// loadConfig runs replaylink's own config loading over an example's
// environment and arguments, as the binary would at start.
func loadConfig(t *testing.T, where string, args []string, env map[string]string) *config.Config {
	t.Helper()
	checkEnvNames(t, where, env)
	cfg, _, err := config.Load(serveCommand, args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("%s: replaylink would refuse this configuration: %v", where, err)
	}
	return cfg
}

// secretFile writes a stand-in for a mounted secret so --*-file settings load.
func secretFile(t *testing.T, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(p, []byte("placeholder-"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostPort(t *testing.T, where, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, addr, err)
	}
	return h, p
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
