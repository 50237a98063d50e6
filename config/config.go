package config

import (
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
)

// Config is everything a user can set. Fields are grouped by the part of the
// pipeline they configure (proxy -> enrich -> ship, capture -> enrich); the
// tags are documented in load.go. A fixed-value setting has the type of the
// package that acts on it (enrich.MarkMode, ship.Compression, ...), which
// parses its text and refuses unknown words; config imports those packages
// and none of them imports config.
type Config struct {
	Common
	Proxy
	Session
	Capture
	Enrich
	Ship
	Admin
	Setup
	Lookup

	// origins says where Load found each setting that is not a default,
	// by flag name, so that Validate's errors point at the place to fix.
	origins map[string]origin
}

// origin is where a setting's value came from: a line of the config
// file, an environment variable, or the command line.
type origin struct {
	file string
	line int
	env  bool
	flag bool
}

// Common settings: replaylink's own log, for the commands that log (serve
// and run; setup, check and lookup print their results instead).
type Common struct {
	LogLevel  LogLevel  `flag:"log-level" default:"info" group:"log" help:"replaylink's own log level: debug, info, warn or error"`
	LogFormat LogFormat `flag:"log-format" default:"text" group:"log" help:"replaylink's own log format: text or json"`
}

// Proxy configures the reverse proxy (package proxy).
type Proxy struct {
	Listen                string        `flag:"listen" default:":8080" group:"proxy" help:"address the proxy listens on"`
	Upstreams             []string      `flag:"upstream" group:"proxy" help:"backend base URL, e.g. http://127.0.0.1:5000 (several: round robin)"`
	UpstreamHost          string        `flag:"upstream-host" group:"proxy" help:"Host header sent upstream (default: keep the client's)"`
	ConnectTimeout        time.Duration `flag:"connect-timeout" default:"5s" group:"proxy" help:"time to connect to an upstream"`
	ResponseHeaderTimeout time.Duration `flag:"response-header-timeout" default:"60s" group:"proxy" help:"time for the upstream to send response headers (then 504)"`
	IdleTimeout           time.Duration `flag:"idle-timeout" default:"90s" group:"proxy" help:"how long idle keep-alive connections are kept, both sides"`
	ClientHeaderTimeout   time.Duration `flag:"client-header-timeout" default:"30s" group:"proxy" help:"time a client has to send its request line and headers (then 408; slowloris protection)"`
	MaxHeaderBytes        ByteSize      `flag:"max-header-bytes" default:"64KiB" group:"proxy" help:"largest request line plus headers accepted (then 431)"`
	ClientBodyTimeout     time.Duration `flag:"client-body-timeout" default:"60s" group:"proxy" help:"time a client has to send its request body, plus a second per --client-body-min-rate bytes received (then 408)"`
	ClientBodyMinRate     ByteSize      `flag:"client-body-min-rate" default:"16KiB" group:"proxy" help:"bytes of request body that buy one more second beyond --client-body-timeout; 0: the timeout alone bounds a body"`
	MaxConnsPerClient     int           `flag:"max-conns-per-client" default:"1024" group:"proxy" help:"open connections one client IP address may have; more are answered 429 and closed"`
	MaxConnsPerUpstream   int           `flag:"max-conns-per-upstream" default:"4096" group:"proxy" help:"connections opened to one backend; a request waits up to --connect-timeout for a free one (then 503)"`
	MaxFails              int           `flag:"max-fails" default:"3" group:"proxy" help:"failures in a row after which an upstream is skipped for --fail-cooldown"`
	FailCooldown          time.Duration `flag:"fail-cooldown" default:"10s" group:"proxy" help:"how long a failing upstream is skipped"`
	GracePeriod           time.Duration `flag:"grace-period" default:"10s" group:"proxy" help:"on SIGTERM, time to drain requests and flush documents"`
	CORSAddSessionHeader  bool          `flag:"cors-add-session-header" default:"true" group:"proxy" help:"add asked-for session headers to the upstream's CORS preflight answer"`
	ErrorBodyBytes        ByteSize      `flag:"error-body-bytes" default:"8KiB" group:"proxy" help:"how much of a 5xx response body is kept in its document, 0 to 16KiB"`
	EventQueue            int           `flag:"event-queue" default:"16384" group:"proxy" help:"access events buffered in memory before they spill or are dropped"`

	RedactQueryParams []string `flag:"redact-query-param" group:"proxy" help:"query parameter whose value documents show as REDACTED (whole name or one of its words, any case), besides the built-in ones: names containing token, password, passwd, secret, key, auth, session, code, credential, signature, jwt, bearer or assertion, and names with the word pwd, pass, sig or otp"`
}

// Session configures how the OpenReplay session of a request is found.
type Session struct {
	SessionSources  []proxy.ConfiguredSource `flag:"session-source" default:"header,token,baggage" group:"session" help:"where to look for the session, in order: header, token, baggage, cookie, query"`
	SessionCookie   string                   `flag:"session-cookie" group:"session" help:"cookie holding the session id (with session-source cookie)"`
	SessionQuery    string                   `flag:"session-query" group:"session" help:"query parameter holding the session id (with session-source query)"`
	TokenSecret     string                   `flag:"openreplay-token-secret" group:"session" secret:"true" help:"OpenReplay's token secret; when set, session tokens are verified"`
	TokenSecretFile string                   `flag:"openreplay-token-secret-file" group:"session" help:"file holding OpenReplay's token secret"`
}

// Capture configures what is read of the backend's own output (package capture).
type Capture struct {
	Tail          []string              `flag:"tail" group:"capture" help:"log file or glob to follow (rotation aware)"`
	MaxLineBytes  ByteSize              `flag:"max-line-bytes" default:"64KiB" group:"capture" help:"longer lines are cut and marked truncated"`
	TailFromStart bool                  `flag:"tail-from-beginning" group:"capture" help:"read files found at start-up from their beginning instead of their end"`
	Restart       capture.RestartPolicy `flag:"restart" default:"never" group:"capture" help:"with run: restart the backend when it exits: never (replaylink exits with its code), on-failure, always"`
	// Hooks and HooksDir: the runtime hooks (package capture/hooks) that
	// make a Python or Node backend's lines exact.
	Hooks    hooks.Mode `flag:"hooks" default:"auto" group:"capture" help:"with run: load replaylink's runtime hooks into a Python or Node backend (PYTHONPATH, NODE_OPTIONS), so each line it prints is tied to its request: auto or off"`
	HooksDir string     `flag:"hooks-dir" group:"capture" help:"where the runtime hooks are installed (default with run: SPOOL_DIR/hooks); with serve, a directory shared with the app container of a sidecar, whose marks are then read in --tail files"`
}

// Enrich configures the documents (package enrich).
type Enrich struct {
	ServiceName      string                   `flag:"service-name" group:"enrich" help:"service.name of every document (default: the command or upstream host)"`
	Mark             enrich.MarkMode          `flag:"mark" default:"auto" group:"enrich" help:"which documents carry [openReplaySession.id=N] in message: auto (problems always, info up to --mark-info-limit per session), all, problems"`
	Sessionless      enrich.SessionlessPolicy `flag:"sessionless" default:"all" group:"enrich" help:"what becomes of documents of no session (health checks, bots, server-to-server calls; OpenReplay never shows them): all, errors (only level error), none"`
	MarkInfoLimit    int                      `flag:"mark-info-limit" default:"200" group:"enrich" help:"with --mark auto: info documents marked per session, 0 to 1000; 0 marks none (problems are marked whatever the limit)"`
	AttributionGrace time.Duration            `flag:"attribution-grace" default:"20ms" group:"enrich" help:"window attribution: a backend line read this long after a request ended still counts as printed during it, 0 to 1s; 0: only lines read while the request is in flight"`
}

// Ship configures Elasticsearch and the spool (package ship). The
// connection (group es) serves every command that talks to Elasticsearch;
// the write target's form (target) the commands that write; the spool and
// shipping (ship) serve and run only.
type Ship struct {
	ESURLs []string `flag:"es-url" group:"es" help:"Elasticsearch URL, repeatable: give several nodes of a cluster and requests are spread over them (a node that does not answer or pushes back is left alone for a while); without it, serve and run write documents to --output"`
	// ESDiscover and ESDiscoverInterval: the shipper's node pool follows
	// the cluster (esclient.Options.Discover).
	ESDiscover         bool          `flag:"es-discover" group:"ship" help:"learn the cluster's HTTP nodes from _nodes/http (at start and every --es-discover-interval) and spread bulk requests over them instead of the --es-url nodes; leave off when the nodes' published addresses cannot be reached from here (behind a load balancer, in another network)"`
	ESDiscoverInterval time.Duration `flag:"es-discover-interval" default:"5m" group:"ship" help:"with --es-discover: how often the nodes are learnt again; 0 only at start"`
	// ESReplicas is one setting for setup and the shipper's own template
	// install (ship.Replicas): "auto" or a number.
	ESReplicas        string           `flag:"es-replicas" default:"auto" group:"target" help:"replica shards of each index the template makes: auto (0 on a cluster with one data node, 1 with several) or a number"`
	Index             string           `flag:"index" default:"logs" group:"es" help:"write target; OpenReplay searches the index named logs"`
	DataStream        bool             `flag:"data-stream" group:"target" help:"write to data stream logs-replaylink-default with alias --index"`
	ESAPIKey          string           `flag:"es-api-key" group:"es" secret:"true" help:"API key, id:key or base64"`
	ESAPIKeyFile      string           `flag:"es-api-key-file" group:"es" help:"file holding the API key"`
	ESUsername        string           `flag:"es-username" group:"es" help:"basic auth user"`
	ESPassword        string           `flag:"es-password" group:"es" secret:"true" help:"basic auth password"`
	ESPasswordFile    string           `flag:"es-password-file" group:"es" help:"file holding the basic auth password"`
	ESCACert          string           `flag:"es-ca-cert" group:"es" help:"PEM file of the CA that signed Elasticsearch's certificate"`
	ESCAFingerprint   string           `flag:"es-ca-fingerprint" group:"es" help:"SHA-256 fingerprint of Elasticsearch's CA certificate"`
	ESInsecure        bool             `flag:"es-insecure" group:"es" help:"do not verify Elasticsearch's certificate (unsafe)"`
	ESSetup           bool             `flag:"es-setup" default:"true" group:"ship" help:"install the index template on start when allowed"`
	ESCompression     ship.Compression `flag:"es-compression" default:"auto" group:"ship" help:"bulk request bodies: auto (gzip unless every --es-url host is loopback), gzip or none"`
	FlushBytes        ByteSize         `flag:"flush-bytes" default:"5MB" group:"ship" help:"send a bulk request when this much is waiting"`
	FlushInterval     time.Duration    `flag:"flush-interval" default:"1s" group:"ship" help:"send a bulk request at least this often"`
	Workers           int              `flag:"workers" default:"2" group:"ship" help:"bulk requests in flight"`
	SpoolDir          string           `flag:"spool-dir" default:"./replaylink-spool" group:"ship" help:"directory of the disk spool, offsets and dead letters"`
	SpoolMaxBytes     ByteSize         `flag:"spool-max-bytes" default:"1GiB" group:"ship" help:"spool size cap; at the cap the oldest segment is dropped and counted"`
	SpoolSyncInterval time.Duration    `flag:"spool-sync-interval" default:"200ms" group:"ship" help:"how often the spool is fsynced (the most a power loss can lose)"`
	Output            string           `flag:"output" group:"ship" help:"without --es-url: file for documents as JSON lines, or - for stdout (default - for serve)"`
	MemoryStore       int              `flag:"memory-store" default:"50000" group:"ship" help:"recent documents kept in memory for lookups; 0 keeps none (lookups then search only --es-url, and say so)"`

	OutputMaxBytes ByteSize `flag:"output-max-bytes" default:"100MiB" group:"ship" help:"rotate the --output file before it passes this size (FILE to FILE.1, FILE.1 to FILE.2, ...); 0 never rotates; stdout is never rotated"`
	OutputKeep     int      `flag:"output-keep" default:"5" group:"ship" help:"rotated --output files kept (FILE.1 to FILE.N); a rotation deletes the oldest past N, counted in replaylink_output_removed_files_total"`
}

// Admin configures the admin listener: health, metrics, lookup, ingest.
// Its address and token (group admin) are also how lookup reaches it; its
// limits (admin-server) concern only the listener itself.
type Admin struct {
	AdminListen      string `flag:"admin" default:"127.0.0.1:9090" group:"admin" help:"admin listener address (health, metrics, lookup, ingest)"`
	AdminToken       string `flag:"admin-token" group:"admin" secret:"true" help:"bearer token required for lookup and ingest"`
	AdminTokenFile   string `flag:"admin-token-file" group:"admin" help:"file holding the admin token"`
	AllowRemoteAdmin bool   `flag:"allow-remote-lookup" group:"admin-server" help:"serve lookup and ingest on a non-loopback admin address without --admin-token"`

	AdminHeaderTimeout time.Duration `flag:"admin-header-timeout" default:"10s" group:"admin-server" help:"time an admin client has to send its request line and headers"`
	AdminReadTimeout   time.Duration `flag:"admin-read-timeout" default:"60s" group:"admin-server" help:"time an admin client has to send a whole request, body included (POST /ingest)"`
	AdminIdleTimeout   time.Duration `flag:"admin-idle-timeout" default:"60s" group:"admin-server" help:"how long an idle keep-alive connection to the admin listener is kept"`
}

// Setup configures replaylink setup.
type Setup struct {
	Retention time.Duration `flag:"retention" default:"720h" group:"setup" help:"delete documents older than this"`
	APIKeys   bool          `flag:"api-keys" group:"setup" help:"create least-privilege writer and reader API keys"`
}

// Lookup configures replaylink lookup.
type Lookup struct {
	JSON  bool `flag:"json" group:"lookup" help:"print JSON instead of a table"`
	Limit int  `flag:"limit" default:"1000" group:"lookup" help:"most documents to print, 1 to 10000"`
}
