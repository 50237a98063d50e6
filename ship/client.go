package ship

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// ClientOptions says how to reach and authenticate to Elasticsearch.
type ClientOptions struct {
	URLs          []string
	APIKey        string // "id:key" or its base64 form
	Username      string
	Password      string
	CACertFile    string
	CAFingerprint string
	Insecure      bool
	Timeout       time.Duration // per request; 0 means 30s
}

// NewClient builds the one Elasticsearch client replaylink uses for
// shipping, set-up, check and lookup. It speaks to Elasticsearch 7.17, 8.x
// and 9.x as they are, and to OpenSearch 2.x deliberately: the v8 client
// refuses servers that do not send X-Elastic-Product, so productTransport
// recognises OpenSearch from its root endpoint and vouches for it.
func NewClient(o ClientOptions) (*elasticsearch.Client, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("no Elasticsearch URL: give --es-url")
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = timeout
	base.MaxIdleConnsPerHost = 16
	if o.CACertFile != "" || o.Insecure {
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
		tc.InsecureSkipVerify = o.Insecure
		base.TLSClientConfig = tc
	}
	cfg := elasticsearch.Config{
		Addresses:              o.URLs,
		Username:               o.Username,
		Password:               o.Password,
		APIKey:                 EncodeAPIKey(o.APIKey),
		CertificateFingerprint: strings.ReplaceAll(o.CAFingerprint, ":", ""),
		Transport:              &productTransport{next: base},
		DisableRetry:           true, // the shipper owns retries and backoff
	}
	if o.CAFingerprint != "" {
		// The fingerprint check is the client's own, on a transport it builds.
		cfg.Transport = nil
	}
	return elasticsearch.NewClient(cfg)
}

// EncodeAPIKey turns "id:key" into the base64 form the Authorization header
// takes, and leaves an already encoded key as it is.
func EncodeAPIKey(k string) string {
	if k == "" || !strings.Contains(k, ":") {
		return k
	}
	return base64.StdEncoding.EncodeToString([]byte(k))
}

// productTransport adds X-Elastic-Product to the answers of a server it has
// recognised as OpenSearch, which the v8 client would otherwise refuse.
type productTransport struct {
	next       http.RoundTripper
	openSearch atomic.Bool
}

func (t *productTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Header.Get("X-Elastic-Product") != "" {
		return resp, err
	}
	if !t.openSearch.Load() && req.Method == http.MethodGet && (req.URL.Path == "/" || req.URL.Path == "") {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr == nil && bytes.Contains(body, []byte(`"distribution" : "opensearch"`)) || bytes.Contains(body, []byte(`"distribution":"opensearch"`)) {
			t.openSearch.Store(true)
		}
	}
	if t.openSearch.Load() {
		resp.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return resp, nil
}
