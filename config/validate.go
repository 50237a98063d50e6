package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Validate checks every value and names the setting and the fix of the first
// problem it finds. It also reads secrets given as files (--*-file), so later
// code sees one place for each secret.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flagName, EnvName(flagName), fmt.Sprintf(format, a...)))
	}
	oneOf := func(flagName, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(flagName, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("log-level", c.LogLevel, "debug", "info", "warn", "error")
	oneOf("log-format", c.LogFormat, "text", "json")
	oneOf("mark", c.Mark, "auto", "all", "problems")
	oneOf("restart", c.Restart, "never", "on-failure", "always")
	oneOf("hooks", c.Hooks, "auto", "off")
	oneOf("es-compression", c.ESCompression, "auto", "gzip", "none")

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (e.g. :8080 or 127.0.0.1:8080)", c.Listen)
	}
	if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
		bad("admin", "%q is not host:port (e.g. 127.0.0.1:9090)", c.AdminListen)
	}
	for _, u := range c.Upstreams {
		if err := checkURL(u); err != nil {
			bad("upstream", "%v; expected a URL like http://127.0.0.1:5000", err)
		}
	}
	for _, u := range c.ESURLs {
		if err := checkURL(u); err != nil {
			bad("es-url", "%v; expected a URL like https://es.example.com:9200", err)
		}
	}
	for _, s := range c.SessionSources {
		switch s {
		case "header", "token", "baggage":
		case "cookie":
			if c.SessionCookie == "" {
				bad("session-cookie", "session-source cookie needs the cookie's name")
			}
		case "query":
			if c.SessionQuery == "" {
				bad("session-query", "session-source query needs the parameter's name")
			}
		default:
			bad("session-source", "%q is not one of header, token, baggage, cookie, query", s)
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
	positive("max-header-bytes", int64(c.MaxHeaderBytes))
	positive("client-body-timeout", int64(c.ClientBodyTimeout))
	positive("max-conns-per-client", int64(c.MaxConnsPerClient))
	positive("max-conns-per-upstream", int64(c.MaxConnsPerUpstream))
	if c.ClientBodyMinRate < 0 {
		bad("client-body-min-rate", "must not be negative (0: no extension beyond --client-body-timeout)")
	}
	positive("max-fails", int64(c.MaxFails))
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
		bad("es-discover-interval", "must not be negative (0: learn the nodes only at start)")
	}
	if _, _, err := c.Replicas(); err != nil {
		bad("es-replicas", "%v", err)
	}
	if c.MarkInfoLimit < 0 {
		bad("mark-info-limit", "must not be negative")
	}
	for _, n := range c.RedactQueryParams {
		if n = strings.TrimSpace(n); n == "" || len(n) > 128 {
			bad("redact-query-param", "%q is not a query parameter name: give 1 to 128 characters, e.g. --redact-query-param ssn", n)
		}
	}
	if c.OutputKeep < 1 || c.OutputKeep > 1000 {
		bad("output-keep", "%d is out of range: keep 1 to 1000 rotated files (--output-max-bytes 0 turns rotation off)", c.OutputKeep)
	}
	if c.ErrorBodyBytes < 0 || c.ErrorBodyBytes > 16<<10 {
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

func checkURL(raw string) error {
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
	return nil
}
