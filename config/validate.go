package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/lookup"
	"github.com/replaylink/replaylink/proxy"
)

// Validate checks every value and names the setting and the fix of the first
// problem it finds. It also reads secrets given as files (--*-file), so later
// code sees one place for each secret.
func (c *Config) Validate() error {
	var errs []error
	// Each error starts with the setting and where it was set (the file
	// and line, the variable, or the command line), and says what is
	// allowed: a Go field name never reaches the user.
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.origins[flagName].describe(flagName), fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (e.g. :8080 or 127.0.0.1:8080)", c.Listen)
	}
	if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
		bad("admin", "%q is not host:port (e.g. 127.0.0.1:9090)", c.AdminListen)
	}
	for _, u := range c.Upstreams {
		if err := checkURL(u, false); err != nil {
			bad("upstream", "%v; expected a URL like http://127.0.0.1:5000", err)
		}
	}
	if len(c.Upstreams) > maxUpstreams {
		bad("upstream", "%d upstreams: at most %d", len(c.Upstreams), maxUpstreams)
	}
	if strings.ContainsAny(c.UpstreamHost, " \t\r\n/") {
		bad("upstream-host", "%q is not a host name: expected e.g. api.internal or api.internal:8080", c.UpstreamHost)
	}
	for _, u := range c.ESURLs {
		if err := checkURL(u, true); err != nil {
			bad("es-url", "%v; expected a URL like https://es.example.com:9200", err)
		}
	}
	if len(c.SessionSources) == 0 {
		bad("session-source", "none given: give at least one of header, token, baggage, cookie, query")
	}
	for _, s := range c.SessionSources {
		switch s {
		case proxy.LookInCookie:
			if c.SessionCookie == "" {
				bad("session-cookie", "session-source cookie needs the cookie's name")
			}
		case proxy.LookInQuery:
			if c.SessionQuery == "" {
				bad("session-query", "session-source query needs the parameter's name")
			}
		}
	}
	positive := func(flagName string, n int64) {
		if n <= 0 {
			bad(flagName, "must be greater than zero")
		}
	}
	positive("connect-timeout", int64(c.ConnectTimeout))
	positive("response-header-timeout", int64(c.ResponseHeaderTimeout))
	positive("idle-timeout", int64(c.IdleTimeout))
	positive("client-header-timeout", int64(c.ClientHeaderTimeout))
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 16<<20 {
		bad("max-header-bytes", "%d bytes is out of range: 1KiB to 16MiB (64KiB is a good default)", c.MaxHeaderBytes)
	}
	positive("client-body-timeout", int64(c.ClientBodyTimeout))
	positive("max-conns-per-client", int64(c.MaxConnsPerClient))
	positive("max-conns-per-upstream", int64(c.MaxConnsPerUpstream))
	if c.ClientBodyMinRate < 0 {
		bad("client-body-min-rate", "must not be negative (0: no extension beyond --client-body-timeout)")
	}
	positive("max-fails", int64(c.MaxFails))
	if c.FailCooldown < 0 {
		bad("fail-cooldown", "%v is negative: expected 0 (no cool-down) or more, e.g. 10s", c.FailCooldown)
	}
	positive("event-queue", int64(c.EventQueue))
	positive("max-line-bytes", int64(c.MaxLineBytes))
	positive("flush-bytes", int64(c.FlushBytes))
	positive("flush-interval", int64(c.FlushInterval))
	positive("workers", int64(c.Workers))
	positive("spool-max-bytes", int64(c.SpoolMaxBytes))
	positive("spool-sync-interval", int64(c.SpoolSyncInterval))
	positive("retention", int64(c.Retention))
	positive("admin-header-timeout", int64(c.AdminHeaderTimeout))
	positive("admin-read-timeout", int64(c.AdminReadTimeout))
	positive("admin-idle-timeout", int64(c.AdminIdleTimeout))
	if c.ESDiscoverInterval < 0 {
		bad("es-discover-interval", "%v must not be negative: give 0 (learn the nodes only at start) or more, e.g. 5m", c.ESDiscoverInterval)
	}
	if _, _, err := c.Replicas(); err != nil {
		bad("es-replicas", "%v", err)
	}
	if c.MarkInfoLimit < 0 || c.MarkInfoLimit > enrich.MaxMarkInfoLimit {
		bad("mark-info-limit", "%d is out of range: 0 to %d (0 marks no info documents; OpenReplay shows at most 1000 documents per session)", c.MarkInfoLimit, enrich.MaxMarkInfoLimit)
	}
	if c.AttributionGrace < 0 || c.AttributionGrace > enrich.MaxAttributionGrace {
		bad("attribution-grace", "%v is out of range: 0 to %v (0: no grace; e.g. 20ms); a wide grace makes concurrent requests ambiguous", c.AttributionGrace, enrich.MaxAttributionGrace)
	}
	if c.MemoryStore < 0 {
		bad("memory-store", "%d is negative: give 0 (keep no recent documents) or more, e.g. 50000", c.MemoryStore)
	}
	if c.Limit < 1 || c.Limit > lookup.MaxLimit {
		bad("limit", "%d is out of range: 1 to %d documents", c.Limit, lookup.MaxLimit)
	}
	for _, n := range c.RedactQueryParams {
		if n = strings.TrimSpace(n); n == "" || len(n) > 128 {
			bad("redact-query-param", "%q is not a query parameter name: give 1 to 128 characters, e.g. --redact-query-param ssn", n)
		}
	}
	if c.OutputKeep < 1 || c.OutputKeep > 1000 {
		bad("output-keep", "%d is out of range: keep 1 to 1000 rotated files (--output-max-bytes 0 turns rotation off)", c.OutputKeep)
	}
	if c.ErrorBodyBytes < 0 || c.ErrorBodyBytes > proxy.MaxErrorBodyBytes {
		bad("error-body-bytes", "%d is out of range: 0 (keep nothing) to 16KiB, the most an access document keeps of a body", c.ErrorBodyBytes)
	}
	if c.Index == "" || strings.ContainsAny(c.Index, ` "*\<|,>/?`) || c.Index != strings.ToLower(c.Index) {
		bad("index", "%q is not a valid index name (lowercase, no spaces or \\/*?\"<>|,)", c.Index)
	}
	if c.ESAPIKey != "" && c.ESUsername != "" {
		bad("es-api-key", "give either an API key or --es-username/--es-password, not both")
	}
	readSecret := func(fileFlag, path string, dst *string) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			bad(fileFlag, "%v", err)
			return
		}
		*dst = strings.TrimSpace(string(b))
	}
	readSecret("es-api-key-file", c.ESAPIKeyFile, &c.ESAPIKey)
	readSecret("es-password-file", c.ESPasswordFile, &c.ESPassword)
	readSecret("openreplay-token-secret-file", c.TokenSecretFile, &c.TokenSecret)
	readSecret("admin-token-file", c.AdminTokenFile, &c.AdminToken)
	return errors.Join(errs...)
}

// Replicas reads --es-replicas: auto is false with a number of replicas.
func (c *Config) Replicas() (n int, fixed bool, err error) {
	if c.ESReplicas == "auto" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(c.ESReplicas)
	if err != nil || n < 0 || n > 32 {
		return 0, false, fmt.Errorf("%q is not auto or a number of replicas from 0 to 32", c.ESReplicas)
	}
	return n, true, nil
}

// maxUpstreams is the most backends the proxy balances over.
const maxUpstreams = 64

// checkURL checks an http(s) URL; withPath allows a path (Elasticsearch
// behind a reverse proxy's prefix), which an upstream may not have, since
// requests keep their own.
func checkURL(raw string, withPath bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q needs http:// or https://", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return errors.New("a URL with credentials in it is refused (they would end up in logs); use --es-username/--es-password or --es-api-key")
	}
	if !withPath && ((u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("%q may only have scheme, host and port: requests keep their own path and query", raw)
	}
	return nil
}
