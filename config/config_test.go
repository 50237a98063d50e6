package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/replaylink/replaylink/ship"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var serve = Commands["serve"]

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "replaylink.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, left, err := Load(serve, nil, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("left = %q", left)
	}
	if cfg.Listen != ":8080" || cfg.AdminListen != "127.0.0.1:9090" || cfg.Index != "logs" {
		t.Errorf("listen/admin/index defaults = %q %q %q", cfg.Listen, cfg.AdminListen, cfg.Index)
	}
	if cfg.FlushBytes != 5_000_000 || cfg.FlushInterval != time.Second || cfg.SpoolMaxBytes != 1<<30 {
		t.Errorf("ship defaults = %d %s %d", cfg.FlushBytes, cfg.FlushInterval, cfg.SpoolMaxBytes)
	}
	if got := fmt.Sprint(cfg.SessionSources); got != "[header token baggage]" {
		t.Errorf("session sources = %s", got)
	}
	if !cfg.CORSAddSessionHeader || cfg.MarkInfoLimit != 200 || cfg.ErrorBodyBytes != 8<<10 {
		t.Errorf("cors/mark/error-body = %v %d %d", cfg.CORSAddSessionHeader, cfg.MarkInfoLimit, cfg.ErrorBodyBytes)
	}
	if cfg.ESCompression != ship.CompressionAuto {
		t.Errorf("es-compression default = %q", cfg.ESCompression)
	}
	if cfg.ClientBodyTimeout != time.Minute || cfg.ClientBodyMinRate != 16<<10 || cfg.MaxConnsPerClient != 1024 || cfg.MaxConnsPerUpstream != 4096 {
		t.Errorf("client-body-timeout/min-rate, max-conns-per-client/upstream defaults = %s %d %d %d",
			cfg.ClientBodyTimeout, cfg.ClientBodyMinRate, cfg.MaxConnsPerClient, cfg.MaxConnsPerUpstream)
	}
}

// Flags win over the environment, the environment over the file, the file over defaults.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "index: from-file\nservice-name: file-svc\nworkers: 7\nes-url:\n  - http://file-a:9200\n  - http://file-b:9200\n")
	env := envOf(map[string]string{
		"REPLAYLINK_CONFIG":       file,
		"REPLAYLINK_SERVICE_NAME": "env-svc",
		"REPLAYLINK_WORKERS":      "5",
		"REPLAYLINK_UPSTREAM":     "http://env-a:1, http://env-b:2",
	})
	cfg, _, err := Load(serve, []string{"--workers", "3", "--upstream", "http://flag:1"}, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"index (file only)", cfg.Index, "from-file"},
		{"service-name (file < env)", cfg.ServiceName, "env-svc"},
		{"es-url (file list)", strings.Join(cfg.ESURLs, " "), "http://file-a:9200 http://file-b:9200"},
		{"upstream (env list < flag)", strings.Join(cfg.Upstreams, " "), "http://flag:1"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Workers != 3 {
		t.Errorf("workers (file < env < flag) = %d, want 3", cfg.Workers)
	}
}

func TestRepeatedFlagsAndRest(t *testing.T) {
	run := Commands["run"]
	cfg, left, err := Load(run, []string{"--upstream", "http://a:1", "--upstream=http://b:2", "--", "python3", "app.py", "--debug"}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Upstreams, " "); got != "http://a:1 http://b:2" {
		t.Errorf("upstreams = %q", got)
	}
	if got := strings.Join(left, " "); got != "python3 app.py --debug" {
		t.Errorf("rest = %q", got)
	}
	// The comma form, as in the environment and as --help shows defaults.
	cfg, _, err = Load(run, []string{"--session-source", "token, header", "--upstream", "http://a:1,http://b:2", "--upstream", "http://c:3"}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.SessionSources); got != "[token header]" {
		t.Errorf("session sources = %q", got)
	}
	if got := strings.Join(cfg.Upstreams, " "); got != "http://a:1 http://b:2 http://c:3" {
		t.Errorf("upstreams = %q", got)
	}
}

func TestErrorsNameTheSettingAndTheFix(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{name: "bad duration flag", args: []string{"--flush-interval", "soon"}, want: []string{"--flush-interval", `"soon"`, "200ms"}},
		{name: "bad size env", env: map[string]string{"REPLAYLINK_FLUSH_BYTES": "lots"}, want: []string{"REPLAYLINK_FLUSH_BYTES", "5MB"}},
		{name: "bad bool", args: []string{"--data-stream=maybe"}, want: []string{"--data-stream", "true or false"}},
		{name: "unknown file key", file: "listen: :8080\nes_url: http://x:9200\n", want: []string{`unknown key "es_url"`, "line 2", `did you mean "es-url"`}},
		{name: "list for scalar", file: "index:\n  - a\n  - b\n", want: []string{"line 2", "key index (--index) takes one value"}},
		{name: "bad value in file", file: "workers: many\n", want: []string{"line 1", "key workers", "whole number"}},
		{name: "not a mapping", file: "- a\n- b\n", want: []string{"expected a mapping"}},
		{name: "unknown flag", args: []string{"--nope"}, want: []string{"-nope", "replaylink serve --help"}},
		{name: "upstream not a URL", args: []string{"--upstream", "localhost:5000"}, want: []string{"--upstream", "http://"}},
		{name: "credentials in es-url", args: []string{"--es-url", "https://elastic:hunter2@es:9200"}, want: []string{"--es-url", "credentials"}},
		{name: "mark", args: []string{"--mark", "some"}, want: []string{"--mark", "auto, all, problems"}},
		{name: "es-compression", args: []string{"--es-compression", "zstd"}, want: []string{"--es-compression", `"zstd"`, "auto, gzip, none"}},
		{name: "es-replicas word", args: []string{"--es-replicas", "many"}, want: []string{"--es-replicas", `"many"`, "auto or a number of replicas from 0 to 32"}},
		{name: "es-replicas negative", args: []string{"--es-replicas", "-1"}, want: []string{"--es-replicas", `"-1"`}},
		{name: "es-discover-interval", args: []string{"--es-discover-interval", "-1s"}, want: []string{"--es-discover-interval", "must not be negative"}},
		{name: "cookie source without name", args: []string{"--session-source", "cookie"}, want: []string{"--session-cookie"}},
		{name: "zero workers", args: []string{"--workers", "0"}, want: []string{"--workers", "greater than zero"}},
		{name: "error body over the document's cap", args: []string{"--error-body-bytes", "64KiB"}, want: []string{"--error-body-bytes", "16KiB"}},
		{name: "empty redacted name", args: []string{"--redact-query-param", " "}, want: []string{"--redact-query-param", "1 to 128 characters"}},
		{name: "zero output files kept", args: []string{"--output-keep", "0"}, want: []string{"--output-keep", "1 to 1000", "--output-max-bytes 0"}},
		{name: "zero admin idle timeout", args: []string{"--admin-idle-timeout", "0s"}, want: []string{"--admin-idle-timeout", "greater than zero"}},
		{name: "zero max-conns-per-client", args: []string{"--max-conns-per-client", "0"}, want: []string{"--max-conns-per-client", "greater than zero"}},
		{name: "zero max-conns-per-upstream", args: []string{"--max-conns-per-upstream", "0"}, want: []string{"--max-conns-per-upstream", "greater than zero"}},
		{name: "zero client-body-timeout", args: []string{"--client-body-timeout", "0s"}, want: []string{"--client-body-timeout", "greater than zero"}},
		{name: "negative client-body-min-rate", args: []string{"--client-body-min-rate", "-1"}, want: []string{"--client-body-min-rate"}},
		{name: "uppercase index", args: []string{"--index", "Logs"}, want: []string{"--index", "lowercase"}},
		{name: "missing secret file", args: []string{"--es-api-key-file", "/nonexistent/key"}, want: []string{"--es-api-key-file", "/nonexistent/key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range c.env {
				env[k] = v
			}
			if c.file != "" {
				env["REPLAYLINK_CONFIG"] = writeFile(t, c.file)
			}
			_, _, err := Load(serve, c.args, envOf(env), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSecretsNeverEchoed(t *testing.T) {
	secret := "s3cr3t-value-xyz"
	file := writeFile(t, "es-api-key: ["+secret+"]\n")
	_, _, err := Load(serve, nil, envOf(map[string]string{"REPLAYLINK_CONFIG": file}), nil)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error = %v; want an error without the secret", err)
	}
	var help bytes.Buffer
	_, _, err = Load(serve, []string{"--help"}, envOf(map[string]string{"REPLAYLINK_ES_API_KEY": secret}), &help)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(help.String(), secret) {
		t.Fatal("help printed the secret")
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("id:apikey\n"), 0o600)
	cfg, _, err := Load(serve, []string{"--es-api-key-file", key}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ESAPIKey != "id:apikey" {
		t.Fatalf("api key = %q", cfg.ESAPIKey)
	}
	token := filepath.Join(dir, "admin-token")
	os.WriteFile(token, []byte("s3cr3t-admin\n"), 0o600)
	cfg, _, err = Load(serve, nil, envOf(map[string]string{"REPLAYLINK_ADMIN_TOKEN_FILE": token}), nil)
	if err != nil || cfg.AdminToken != "s3cr3t-admin" {
		t.Fatalf("admin token from a file: %q, %v", cfg.AdminToken, err)
	}
}

func TestHelpListsFlagsWithTheirEnvironment(t *testing.T) {
	var help bytes.Buffer
	_, _, err := Load(serve, []string{"-h"}, envOf(nil), &help)
	if !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"--es-url", "REPLAYLINK_ES_URL", "--listen (default :8080)", "repeatable", "--config"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(help.String(), "--retention") {
		t.Error("serve's help lists setup's --retention")
	}
}

// A flag of another command is refused, but the same key in the file is fine,
// so one file can serve serve, setup and check.
func TestCommandGroups(t *testing.T) {
	check := Commands["check"]
	if _, _, err := Load(check, []string{"--listen", ":1"}, envOf(nil), nil); err == nil {
		t.Error("check took --listen")
	}
	file := writeFile(t, "listen: 127.0.0.1:1234\nretention: 240h\n")
	cfg, _, err := Load(check, nil, envOf(map[string]string{"REPLAYLINK_CONFIG": file}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1234" || cfg.Retention != 240*time.Hour {
		t.Errorf("file values not applied: %q %s", cfg.Listen, cfg.Retention)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "512": 512, "8KiB": 8192, "5MB": 5e6, "1GiB": 1 << 30, "1.5k": 1536, " 2 mib ": 2 << 20} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1KB", "KB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add("listen: :8080\nes-url: [http://a:9200]\n")
	f.Add("workers: x\n")
	f.Add("- 1\n")
	f.Add("flush-bytes: 5MB\nmark: all\n")
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Load(serve, nil, envOf(map[string]string{"REPLAYLINK_CONFIG": p}), nil)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	lookup := Commands["lookup"]
	cfg, left, err := Load(lookup, []string{"123", "--json", "--admin", "127.0.0.1:1"}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.JSON || cfg.AdminListen != "127.0.0.1:1" || strings.Join(left, " ") != "123" {
		t.Errorf("json=%v admin=%q left=%q", cfg.JSON, cfg.AdminListen, left)
	}
	_, left, err = Load(lookup, []string{"--json", "--", "--not-a-flag"}, envOf(nil), nil)
	if err != nil || strings.Join(left, " ") != "--not-a-flag" {
		t.Errorf("after --: left=%q err=%v", left, err)
	}
	run := Commands["run"]
	_, left, err = Load(run, []string{"--upstream", "http://a:1", "python3", "app.py", "--port", "5000"}, envOf(nil), nil)
	if err != nil || strings.Join(left, " ") != "python3 app.py --port 5000" {
		t.Errorf("run: the backend's flags were taken as replaylink's: left=%q err=%v", left, err)
	}
}

func TestUnknownEnvironment(t *testing.T) {
	got := UnknownEnvironment([]string{"PATH=/bin", "REPLAYLINK_ES_URL=http://x", "REPLAYLINK_ES_ULR=http://x",
		"REPLAYLINK_CONFIG=/c.yaml", "REPLAYLINK_HOOK_NONCE=0123456789abcdef", "REPLAYLINK_WHATEVER=1"})
	want := []string{
		"environment variable REPLAYLINK_ES_ULR is not a replaylink setting and is ignored (did you mean REPLAYLINK_ES_URL?)",
		"environment variable REPLAYLINK_WHATEVER is not a replaylink setting and is ignored",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestErrorsNameTheirSource: whichever source a bad value comes from, the
// error names the flag, that source (the file and line, the variable, or
// the command line) and what is allowed, for enums, ranges and parse
// errors alike; and never a Go field.
func TestErrorsNameTheirSource(t *testing.T) {
	for _, tc := range []struct {
		flag, value string
		allowed     []string
	}{
		{"mark", "some", []string{"auto, all, problems"}},
		{"log-format", "xml", []string{"text, json"}},
		{"max-header-bytes", "1MiB0", []string{"512KiB"}},
		{"max-header-bytes", "17MiB", []string{"1KiB to 16MiB"}},
		{"output-keep", "0", []string{"1 to 1000"}},
		{"attribution-grace", "2s", []string{"0 to 1s"}},
		{"mark-info-limit", "5000", []string{"0 to 1000"}},
		{"session-source", "cookies", []string{"header, token, baggage, cookie, query"}},
		{"workers", "-2", []string{"greater than zero"}},
		{"upstream", "http://127.0.0.1:1/api", []string{"scheme, host and port"}},
	} {
		for _, src := range []string{"flag", "env", "file"} {
			t.Run(tc.flag+"/"+src, func(t *testing.T) {
				env := map[string]string{}
				var args []string
				var want []string
				switch src {
				case "flag":
					args = []string{"--" + tc.flag, tc.value}
					want = []string{"flag --" + tc.flag}
				case "env":
					env[EnvName(tc.flag)] = tc.value
					want = []string{"environment variable " + EnvName(tc.flag), "--" + tc.flag}
				case "file":
					path := writeFile(t, "# replaylink\nlisten: :8080\n"+tc.flag+": "+tc.value+"\n")
					env["REPLAYLINK_CONFIG"] = path
					want = []string{"config file " + path, "line 3", "key " + tc.flag, "--" + tc.flag}
				}
				_, _, err := Load(serve, args, envOf(env), nil)
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range append(want, tc.allowed...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				for _, goName := range []string{"MaxHeaderBytes", "OutputKeep", "Mark ", "AttributionGrace", "SessionSources", "Upstreams"} {
					if strings.Contains(err.Error(), goName) {
						t.Errorf("error %q names the Go field %s", err, goName)
					}
				}
			})
		}
	}
}
