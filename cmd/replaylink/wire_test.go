package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
)

type nopObserver struct{}

func (nopObserver) RequestStarted(*proxy.RequestStart)    {}
func (nopObserver) RequestFinished(ev *proxy.AccessEvent) { ev.Release() }

type nopPublisher struct{}

func (nopPublisher) Publish(id, source []byte) error { return nil }
func (nopPublisher) Replace(id, source []byte) error { return nil }

// The user-facing flags reach the options of each package unchanged; a
// field forgotten in wire.go would leave a flag without effect.
func TestConfigMapsToPackageOptions(t *testing.T) {
	args := []string{
		"--listen", "127.0.0.1:18080", "--upstream", "http://127.0.0.1:5000", "--upstream", "http://127.0.0.1:5001",
		"--upstream-host", "api.internal", "--connect-timeout", "2s", "--response-header-timeout", "7s", "--idle-timeout", "33s", "--client-header-timeout", "4s",
		"--max-header-bytes", "32KiB", "--client-body-timeout", "9s", "--client-body-min-rate", "2KiB",
		"--max-conns-per-client", "12", "--max-conns-per-upstream", "34", "--max-fails", "4", "--fail-cooldown", "3s", "--cors-add-session-header=false",
		"--error-body-bytes", "1KiB", "--session-source", "token", "--session-source", "cookie", "--session-cookie", "orsid",
		"--openreplay-token-secret", "s3cret", "--service-name", "cart", "--mark", "problems", "--mark-info-limit", "50", "--sessionless", "errors",
		"--attribution-grace", "5ms", "--event-queue", "99", "--tail", "/var/log/app/*.log", "--max-line-bytes", "1KiB",
		"--tail-from-beginning", "--es-url", "http://127.0.0.1:9200", "--index", "logs2", "--data-stream",
		"--es-discover", "--es-discover-interval", "90s", "--es-replicas", "2",
		"--es-api-key", "id:key", "--es-ca-cert", "/ca.pem", "--es-insecure", "--es-setup=false", "--es-compression", "none", "--flush-bytes", "1MB",
		"--flush-interval", "250ms", "--workers", "3", "--spool-dir", "/tmp/spool-x", "--spool-max-bytes", "10MiB",
		"--spool-sync-interval", "50ms", "--memory-store", "7", "--output-max-bytes", "3MiB", "--output-keep", "9",
		"--redact-query-param", "ssn", "--redact-query-param", "api_sig",
		"--admin-header-timeout", "3s", "--admin-read-timeout", "11s", "--admin-idle-timeout", "13s",
	}
	cfg, _, err := config.Load(config.Commands["serve"], args, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.Nop()

	po := proxyOptions(cfg, nopObserver{}, log)
	wantProxy := proxy.Options{
		Listen: "127.0.0.1:18080", Upstreams: []string{"http://127.0.0.1:5000", "http://127.0.0.1:5001"}, UpstreamHost: "api.internal",
		ConnectTimeout: 2 * time.Second, ResponseHeaderTimeout: 7 * time.Second, IdleTimeout: 33 * time.Second, ClientHeaderTimeout: 4 * time.Second,
		MaxHeaderBytes: 32 << 10, ClientBodyTimeout: 9 * time.Second, ClientBodyMinRate: 2 << 10,
		MaxConnsPerClient: 12, MaxConnsPerUpstream: 34, MaxFails: 4, FailCooldown: 3 * time.Second, CORSAddSessionHeader: false, ErrorBodyBytes: 1 << 10,
		RedactQueryParams: []string{"ssn", "api_sig"},
		Sessions:          proxy.SessionOptions{Sources: []proxy.ConfiguredSource{proxy.LookInToken, proxy.LookInCookie}, Cookie: "orsid", TokenSecret: "s3cret"},
	}
	po.Observer, po.Logger = nil, zerolog.Logger{}
	wantProxy.Logger = zerolog.Logger{}
	if !reflect.DeepEqual(po, wantProxy) {
		t.Errorf("proxy options\n got %+v\nwant %+v", po, wantProxy)
	}
	if err := po.Validate(); err != nil {
		t.Errorf("mapped proxy options do not validate: %v", err)
	}

	eo := enrichOptions(cfg, false, false, nopPublisher{}, log)
	if eo.ServiceName != "cart" || eo.Mark != enrich.MarkProblems || eo.Sessionless != enrich.SessionlessErrors || eo.MarkInfoLimit != 50 || eo.AttributionGrace != 5*time.Millisecond ||
		eo.PushedLinesOnly || eo.QueueSize != 99 || eo.Publisher == nil {
		t.Errorf("enrich options = %+v", eo)
	}
	if err := eo.Validate(); err != nil {
		t.Errorf("mapped enrich options do not validate: %v", err)
	}

	to := tailerOptions(cfg, nil, hooks.Nonce{}, log)
	if !reflect.DeepEqual(to.Paths, []string{"/var/log/app/*.log"}) || to.StateDir != "/tmp/spool-x" || to.MaxLineBytes != 1<<10 || !to.FromBeginning {
		t.Errorf("tailer options = %+v", to)
	}

	var out bytes.Buffer
	so := shipOptions(cfg, &out, log)
	wantClient := esclient.Options{URLs: []string{"http://127.0.0.1:9200"}, Discover: true, DiscoverInterval: 90 * time.Second,
		APIKey: "id:key", CACertFile: "/ca.pem", Insecure: true}
	if !reflect.DeepEqual(so.Client, wantClient) {
		t.Errorf("client options\n got %+v\nwant %+v", so.Client, wantClient)
	}
	if so.SpoolDir != "/tmp/spool-x" || so.SpoolMaxBytes != 10<<20 || so.SyncInterval != 50*time.Millisecond || so.FlushBytes != 1_000_000 ||
		so.FlushInterval != 250*time.Millisecond || so.Workers != 3 || so.Index != "logs2" || !so.DataStream || so.InstallTemplate ||
		so.MemoryStore != 7 || so.Output != &out || so.Compression != ship.CompressionNone || so.Replicas != ship.FixedReplicas(2) {
		t.Errorf("ship options = %+v", so)
	}

	h := http.NotFoundHandler()
	as := adminServer(cfg, h)
	if as.ReadHeaderTimeout != 3*time.Second || as.ReadTimeout != 11*time.Second || as.IdleTimeout != 13*time.Second || as.Handler == nil {
		t.Errorf("admin server: header %v read %v idle %v", as.ReadHeaderTimeout, as.ReadTimeout, as.IdleTimeout)
	}

	of := outputFileOptions(cfg, "/tmp/docs.ndjson", log)
	if of.Path != "/tmp/docs.ndjson" || of.MaxBytes != 3<<20 || of.Keep != 9 {
		t.Errorf("output file options = %+v", of)
	}

	st := setupOptions(cfg)
	if st.Index != "logs2" || !st.DataStream || st.Retention != 720*time.Hour || st.APIKeys || !reflect.DeepEqual(st.Client, wantClient) ||
		st.Replicas != ship.FixedReplicas(2) {
		t.Errorf("setup options = %+v", st)
	}
}

// Without run or --tail, the only backend lines are those pushed to
// /ingest: the enricher then tracks requests only once one came.
func TestPushedLinesOnly(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		args []string
		want bool
	}{
		{"serve", nil, true},
		{"serve", []string{"--tail", "/var/log/app/*.log"}, false},
		{"run", []string{"--", "python", "app.py"}, false},
		{"run", []string{"--tail", "/var/log/app/*.log", "--", "python", "app.py"}, false},
	} {
		cfg, _, err := config.Load(config.Commands[tc.cmd], tc.args, func(string) string { return "" }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := enrichOptions(cfg, tc.cmd == "run", false, nopPublisher{}, zerolog.Nop()).PushedLinesOnly; got != tc.want {
			t.Errorf("%s %q: PushedLinesOnly %v, want %v", tc.cmd, tc.args, got, tc.want)
		}
	}
}

func TestChildEnvUnbuffersPython(t *testing.T) {
	got := childEnv([]string{"PATH=/bin"})
	if !reflect.DeepEqual(got, []string{"PATH=/bin", "PYTHONUNBUFFERED=1"}) {
		t.Errorf("childEnv = %q", got)
	}
	mine := []string{"PYTHONUNBUFFERED=", "PATH=/bin"}
	if got := childEnv(mine); !reflect.DeepEqual(got, mine) {
		t.Errorf("childEnv overrode the user's setting: %q", got)
	}
}

// TestHookSetup: where the runtime hooks go, with which nonce, per command
// and --hooks.
func TestHookSetup(t *testing.T) {
	spool, shared := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		name          string
		isRun         bool
		hooks         hooks.Mode
		dir           string
		wantDir       string
		wantKeptNonce bool // the nonce is the one in dir's nonce file
	}{
		{"run, auto", true, hooks.ModeAuto, "", filepath.Join(spool, "hooks"), false},
		{"run, auto, a directory", true, hooks.ModeAuto, shared, shared, false},
		{"run, off", true, hooks.ModeOff, "", "", false},
		{"serve, no directory", false, hooks.ModeAuto, "", "", false},
		{"serve, a shared directory", false, hooks.ModeAuto, shared, shared, true},
		{"serve, a shared directory, off", false, hooks.ModeOff, shared, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Config{}
			c.SpoolDir, c.Hooks, c.HooksDir = spool, tc.hooks, tc.dir
			dir, nonce, err := hookSetup(c, tc.isRun)
			if err != nil || dir != tc.wantDir || nonce.IsZero() != (tc.wantDir == "") {
				t.Fatalf("hookSetup = %q %s %v, want %q", dir, nonce, err, tc.wantDir)
			}
			if dir == "" {
				return
			}
			if _, err := os.Stat(filepath.Join(dir, "python", "sitecustomize.py")); err != nil {
				t.Errorf("hooks not installed in %s: %v", dir, err)
			}
			kept, err := hooks.LoadOrCreateNonce(dir)
			if tc.wantKeptNonce && (err != nil || kept != nonce) {
				t.Errorf("nonce %s, the shared directory keeps %s (%v)", nonce, kept, err)
			}
		})
	}
}

func TestDefaultServiceName(t *testing.T) {
	for _, tc := range []struct {
		upstreams, child []string
		want             string
	}{
		{[]string{"http://127.0.0.1:5000"}, []string{"/usr/bin/gunicorn", "app:app"}, "gunicorn"},
		{[]string{"http://cart-api.shop.svc:8080"}, nil, "cart-api.shop.svc"},
		{nil, nil, ""},
	} {
		if got := defaultServiceName(tc.upstreams, tc.child); got != tc.want {
			t.Errorf("defaultServiceName(%v, %v) = %q, want %q", tc.upstreams, tc.child, got, tc.want)
		}
	}
}
