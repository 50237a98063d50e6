package setup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/ship"
)

// Options configure Run and Check; the lead maps them from config.
type Options struct {
	Client     esclient.Options
	Index      string        // write target, or the alias of the data stream (--index); required
	DataStream bool          // write to DataStreamName with the alias Index
	Retention  time.Duration // delete documents older than this (--retention); required
	APIKeys    bool          // create the writer and reader API keys (setup only)
	Replicas   ship.Replicas // of the indices the template makes; zero: suit the cluster
}

// DataStreamName is the data stream written with --data-stream.
const DataStreamName = ship.DataStreamName

// requestTimeout bounds each of setup's and check's requests when the
// caller sets none: they are small, and a user waits at the terminal.
const requestTimeout = 15 * time.Second

// prepare refuses options config never passes and sets setup's own request
// timeout. config owns the defaults of --index and --retention (one source
// of truth): an empty index or a zero retention here is a caller's mistake,
// not a request for a default.
func (o *Options) prepare() error {
	switch {
	case o.Index == "":
		return errors.New("setup: no index given (--index)")
	case o.Retention <= 0:
		return fmt.Errorf("setup: retention %v: want a positive duration (--retention)", o.Retention)
	}
	if o.Client.Timeout == 0 {
		o.Client.Timeout = requestTimeout
	}
	return nil
}

func (o *Options) target() ship.Target {
	return ship.Target{Index: o.Index, DataStream: o.DataStream, Replicas: o.Replicas}
}

// writeName is where documents are written: the index, or the data stream
// behind the alias.
func (o *Options) writeName() string { return o.target().WriteName() }

// targetNames are the names a key must be allowed to use.
func (o *Options) targetNames() []string {
	if o.DataStream {
		return []string{DataStreamName, o.Index}
	}
	return []string{o.Index}
}

// address names the node for people, without credentials.
func (o *Options) address() string {
	if len(o.Client.URLs) == 0 {
		return "(no --es-url)"
	}
	a := redactURL(o.Client.URLs[0])
	if n := len(o.Client.URLs); n > 1 {
		a += fmt.Sprintf(" (and %d more)", n-1)
	}
	return a
}

// connection is the result of reaching the node: each of Check's first three
// lines, and the exit code if it failed.
type connection struct {
	node      *node
	reachable step
	auth      step
	version   step
	exit      int // ExitOK when all three passed
}

// connect checks the options (prepare), builds the client and reads GET /,
// classifying what went wrong.
func connect(ctx context.Context, o *Options) connection {
	c := connection{
		reachable: step{name: "node reachable", outcome: OK, note: o.address()},
		auth:      step{name: "auth accepted", outcome: OK},
		version:   step{name: "version", outcome: OK},
	}
	if err := o.prepare(); err != nil {
		c.reachable = fail("options", err.Error(), "")
		c.exit = ExitMisconfigured
		return c
	}
	if len(o.Client.URLs) == 0 {
		c.reachable = fail("node reachable", "no Elasticsearch URL", "give --es-url (REPLAYLINK_ES_URL), e.g. https://es.example.com:9200")
		c.exit = ExitMisconfigured
		return c
	}
	es, err := esclient.New(o.Client)
	if err != nil {
		c.reachable = fail("node reachable", err.Error(), "fix the connection settings named above")
		c.exit = ExitMisconfigured
		return c
	}
	n := &node{es: es.Client, address: o.address()}
	c.node = n
	r, err := n.hello(ctx)
	switch {
	case err != nil && isTLS(err):
		c.reachable = fail("node reachable", fmt.Sprintf("%s: TLS failed: %v", n.address, err),
			"give the CA that signed the node's certificate with --es-ca-cert FILE or --es-ca-fingerprint SHA256, or use http:// if the node does not speak TLS")
		c.exit = ExitMisconfigured
	case err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		c.reachable = fail("node reachable", fmt.Sprintf("%s speaks plain HTTP", n.address), "use an http:// URL in --es-url")
		c.exit = ExitMisconfigured
	case err != nil && unreachable(err):
		c.reachable = fail("node reachable", fmt.Sprintf("cannot connect to %s: %v", n.address, err),
			"check the host and port in --es-url and that the node is running (curl it from this machine)")
		c.exit = ExitUnreachable
	case err != nil && strings.Contains(err.Error(), "not Elasticsearch"):
		c.version = fail("version", fmt.Sprintf("%s does not answer like Elasticsearch or OpenSearch: %v", n.address, err),
			"point --es-url at the HTTP port (usually 9200) of Elasticsearch 7.17+, 8.x, 9.x or OpenSearch 2.x")
		c.exit = ExitMisconfigured
	case err != nil:
		c.reachable = fail("node reachable", fmt.Sprintf("%s: %v", n.address, err), "check --es-url")
		c.exit = ExitUnreachable
	case r.status == http.StatusUnauthorized:
		c.auth = fail("auth accepted", "the node answered 401: "+r.reason(), credentialsFix(o))
		c.exit = ExitUnauthorized
	case r.status == http.StatusForbidden:
		c.version = fail("version", "the node answered 403 to GET /: "+r.reason(), "the credentials need the cluster privilege monitor")
		c.exit = ExitMisconfigured
	case !r.ok():
		c.version = fail("version", fmt.Sprintf("GET / answered %d: %s", r.status, r.reason()), "check that --es-url is the node's HTTP endpoint")
		c.exit = ExitMisconfigured
	}
	if c.auth.outcome == OK {
		c.auth.note = "credentials accepted"
		if o.Client.APIKey == "" && o.Client.Username == "" {
			c.auth.note = "no credentials given, and the node asks for none"
		}
	}
	if c.exit != ExitOK {
		return c
	}
	c.version.note = n.info.String()
	if n.info.openSearch() && n.info.major < 2 || !n.info.openSearch() && !n.info.atLeast(7, 17) {
		c.version = fail("version", n.info.String()+" is not supported", "use Elasticsearch 7.17, 8.x or 9.x, or OpenSearch 2.x")
		c.exit = ExitMisconfigured
	}
	return c
}

func credentialsFix(o *Options) string {
	switch {
	case o.Client.APIKey != "":
		return "the API key was refused: check --es-api-key / REPLAYLINK_ES_API_KEY (id:key, or the base64 'encoded' value) and that the key is not expired or invalidated"
	case o.Client.Username != "":
		return "the user or password was refused: check --es-username and --es-password (REPLAYLINK_ES_PASSWORD)"
	}
	return "the node requires credentials: give --es-api-key (REPLAYLINK_ES_API_KEY) or --es-username and --es-password"
}

func isTLS(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &rh) ||
		strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "fingerprint mismatch")
}
