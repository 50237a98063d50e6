package esclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/rs/zerolog"
)

// Options says how to reach and authenticate to Elasticsearch.
// Secrets (APIKey, Password, and a password inside a URL) never appear in
// errors or logs.
type Options struct {
	// URLs are the cluster's HTTP nodes, requests are spread over them
	// (nodePool); user:password@ in a URL is taken as basic auth.
	URLs []string
	// Discover: the shipper learns the cluster's HTTP nodes from
	// _nodes/http at start and every DiscoverInterval (0: at start only),
	// and spreads its requests over those instead of URLs. Set-up, check
	// and lookup use URLs as given.
	Discover         bool
	DiscoverInterval time.Duration
	APIKey           string // "id:key" or its base64 form
	Username         string
	Password         string
	CACertFile       string // PEM
	CAFingerprint    string // SHA-256 of a certificate in the server's chain, hex, colons allowed
	Insecure         bool   // skip certificate verification (warned about loudly)
	Timeout          time.Duration
	Logger           zerolog.Logger // for the --es-insecure warning
}

// Client is the one Elasticsearch client replaylink uses for shipping,
// set-up, check and lookup: the go-elasticsearch client (embedded, so a
// *Client is an esapi.Transport and has the client's API), with the parts
// below it that its owner uses: the node pool (Discover, Nodes) and the HTTP
// transport (CloseIdleConnections).
//
// It speaks to Elasticsearch 7.17, 8.x and 9.x as they are, and to
// OpenSearch 2.x deliberately: the v8 client refuses servers that do not
// send X-Elastic-Product, so productTransport recognises OpenSearch from its
// root endpoint and vouches for it.
type Client struct {
	*elasticsearch.Client
	nodes     *nodePool
	transport *http.Transport
}

// New builds a Client for the nodes of o.URLs. It checks the options and
// reads the CA file; it sends no request.
func New(o Options) (*Client, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("no Elasticsearch URL: give --es-url")
	}
	urls := make([]string, len(o.URLs))
	for i, raw := range o.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--es-url %s: want http(s)://host:port", redactURL(raw))
		}
		if u.User != nil {
			if o.Username == "" {
				o.Username = u.User.Username()
				o.Password, _ = u.User.Password()
			}
			u.User = nil
		}
		urls[i] = u.String()
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = timeout
	base.MaxIdleConnsPerHost = 16
	// A node that is down but not refusing (a host powered off, a network
	// that drops packets) costs each request that tries it this long
	// before the node pool sends it to another node.
	base.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("--es-ca-cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--es-ca-cert: %s holds no PEM certificate", o.CACertFile)
		}
		tc.RootCAs = pool
	}
	if o.CAFingerprint != "" {
		fp, err := parseFingerprint(o.CAFingerprint)
		if err != nil {
			return nil, err
		}
		// As Elasticsearch's own clients do: trust the server when a
		// certificate of its chain has this fingerprint (the CA's, printed
		// by Elasticsearch on first start).
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if sha256.Sum256(c.Raw) == fp {
					return nil
				}
			}
			return errors.New("no certificate of the server's chain has the --es-ca-fingerprint given")
		}
	}
	if o.Insecure {
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = nil
		o.Logger.Warn().Strs("es", RedactedURLs(urls)).
			Msg("--es-insecure: NOT verifying Elasticsearch's certificate; anyone on the path can read the documents and the credentials. Use --es-ca-cert or --es-ca-fingerprint instead")
	}
	base.TLSClientConfig = tc
	pool, err := newNodePool(base, urls, o.Logger)
	if err != nil {
		return nil, err
	}
	c, err := elasticsearch.NewClient(elasticsearch.Config{
		// One address: the pool below aims each request at a node.
		Addresses:    urls[:1],
		Username:     o.Username,
		Password:     o.Password,
		APIKey:       EncodeAPIKey(o.APIKey),
		Transport:    &productTransport{next: pool},
		DisableRetry: true, // the shipper owns retries and backoff; the pool, failing over
	})
	if err != nil {
		return nil, err
	}
	return &Client{Client: c, nodes: pool, transport: base}, nil
}

// Discover asks the cluster for its HTTP nodes (_nodes/http) and spreads
// the requests that follow over those instead of the nodes known (see
// nodePool.discover). Options.Discover says whether the owner should; the
// client does not call it by itself.
func (c *Client) Discover(ctx context.Context) error { return c.nodes.discover(ctx, c) }

// Nodes lists the host:port of the nodes requests are spread over, in
// round robin order.
func (c *Client) Nodes() []string { return c.nodes.hosts() }

// CloseIdleConnections closes the connections to the nodes that no request
// is using.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// EncodeAPIKey turns "id:key" into the base64 form the Authorization header
// takes, and leaves an already encoded key as it is.
func EncodeAPIKey(k string) string {
	k = strings.TrimSpace(k)
	if k == "" || !strings.Contains(k, ":") {
		return k
	}
	return base64.StdEncoding.EncodeToString([]byte(k))
}

func parseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != len(fp) {
		return fp, errors.New("--es-ca-fingerprint: want the SHA-256 fingerprint, 64 hex digits (colons allowed)")
	}
	copy(fp[:], b)
	return fp, nil
}

// redactURL hides the user information of a URL, even one that does not
// parse.
func redactURL(raw string) string {
	rest := raw
	if scheme := strings.Index(raw, "://"); scheme >= 0 {
		rest = raw[scheme+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:len(raw)-len(rest)] + "REDACTED@" + rest[at+1:]
	}
	return raw
}

// RedactedURLs is urls with the user information of each hidden, for logs.
func RedactedURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

// productTransport adds X-Elastic-Product to the answers of a server it has
// recognised as OpenSearch, which the v8 client would otherwise refuse.
type productTransport struct {
	next http.RoundTripper
	// product: 0 unknown, productOpenSearch, or productOther once a probe
	// answered and said something else (Elasticsearch sends the header).
	product atomic.Int32
}

const (
	productOpenSearch = 1
	productOther      = 2
)

func (t *productTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Header.Get("X-Elastic-Product") != "" {
		return resp, err
	}
	if t.product.Load() == 0 && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The client checks the header of the first successful answer,
		// whatever the request: find out what answered.
		if req.Method == http.MethodGet && (req.URL.Path == "/" || req.URL.Path == "") {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if rerr == nil {
				t.product.Store(productOf(body))
			}
		} else {
			t.probe(req)
		}
	}
	if t.product.Load() == productOpenSearch {
		resp.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return resp, nil
}

// probe asks the root endpoint of the server that answered req, with the
// same credentials, which product it is.
func (t *productTransport) probe(req *http.Request) {
	u := *req.URL
	u.Path, u.RawPath, u.RawQuery = "/", "", ""
	p, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return
	}
	if a := req.Header.Get("Authorization"); a != "" {
		p.Header.Set("Authorization", a)
	}
	resp, err := t.next.RoundTrip(p)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil && resp.StatusCode == http.StatusOK {
		t.product.Store(productOf(body))
	}
}

func productOf(root []byte) int32 {
	var info struct {
		Version struct {
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	if json.Unmarshal(root, &info) == nil && info.Version.Distribution == "opensearch" {
		return productOpenSearch
	}
	return productOther
}
