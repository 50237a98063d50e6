package esclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/estest"
)

// headerNode stands in for a secured Elasticsearch: the security plugin
// (x-pack) cannot run here, the test node being OpenSearch without its
// security plugin. It records the Authorization header of every request
// and answers 401 unless it matches want.
type headerNode struct {
	want string
	mu   sync.Mutex
	seen []string
}

func (h *headerNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Get("Authorization"))
	h.mu.Unlock()
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	if !sameCredentials(r.Header.Get("Authorization"), h.want) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials and anonymous access is not allowed for this request"},"status":401}`)
		return
	}
	io.WriteString(w, `{"version":{"number":"8.15.0"},"tagline":"You Know, for Search"}`)
}

// sameCredentials compares Authorization headers as Elasticsearch does:
// the scheme ignoring case (the Go client sends "APIKey", the docs say
// "ApiKey"), the credentials exactly.
func sameCredentials(got, want string) bool {
	gs, gc, _ := strings.Cut(got, " ")
	ws, wc, _ := strings.Cut(want, " ")
	return strings.EqualFold(gs, ws) && gc == wc
}

func TestAuthHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		url  string // user info to put in the URL
		want string
	}{
		{"api key id:key", Options{APIKey: "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"}, "",
			"ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="},
		{"api key base64, from a file with a newline", Options{APIKey: "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n"}, "",
			"ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="},
		{"basic auth", Options{Username: "replaylink", Password: "s3cr3t:pw"}, "", "Basic cmVwbGF5bGluazpzM2NyM3Q6cHc="},
		{"basic auth in the URL", Options{}, "replaylink:s3cr3t%3Apw@", "Basic cmVwbGF5bGluazpzM2NyM3Q6cHc="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &headerNode{want: tc.want}
			srv := httptest.NewServer(h)
			defer srv.Close()
			tc.opts.URLs = []string{strings.Replace(srv.URL, "http://", "http://"+tc.url, 1)}
			c, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Info()
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d; the node saw Authorization %q, want %q", res.StatusCode, h.seen, tc.want)
			}
		})
	}
}

// TestSecretsStayOut: a bad URL with a password: the error must not show
// it, in any encoding. (ship's TestSecretsStayOut follows a refused key
// through the template install and the shipper's logs.)
func TestSecretsStayOut(t *testing.T) {
	const password = "TOPSECRETPASSWORD"
	_, err := New(Options{URLs: []string{"http://user:" + password + "@host:9200:bad"}})
	if err == nil {
		t.Fatal("a URL with two ports was accepted")
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("New's error shows the password: %s", err)
	}
}

// openSearchRoot answers like OpenSearch 2: no X-Elastic-Product header.
func openSearchRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/" {
		io.WriteString(w, `{"name":"n","version":{"distribution":"opensearch","number":"2.19.1"}}`)
		return
	}
	io.WriteString(w, `{"acknowledged":true}`)
}

func TestTLSOptions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(openSearchRoot))
	defer srv.Close()
	cert := srv.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
	sum := sha256.Sum256(cert.Raw)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	colons := fp[:2] + ":" + fp[2:4] + ":" + fp[4:] // as Elasticsearch prints it, in part

	var logs bytes.Buffer // New logs the warning before it returns
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"no trust configured", Options{}, false},
		{"CA file", Options{CACertFile: caFile}, true},
		{"fingerprint", Options{CAFingerprint: fp}, true},
		{"fingerprint with colons", Options{CAFingerprint: colons}, true},
		{"wrong fingerprint", Options{CAFingerprint: strings.Repeat("ab", 32)}, false},
		{"insecure", Options{Insecure: true, Logger: zerolog.New(&logs)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.URLs = []string{srv.URL}
			c, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			// Not the root first: the OpenSearch probe must cope.
			res, err := esapi.IndicesExistsRequest{Index: []string{"logs"}}.Do(context.Background(), c)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err == nil {
				res.Body.Close()
			}
		})
	}
	if !strings.Contains(logs.String(), "NOT verifying") {
		t.Fatalf("--es-insecure without a loud warning: %q", logs.String())
	}
	for _, bad := range []Options{
		{CAFingerprint: "abc"},
		{CACertFile: filepath.Join(t.TempDir(), "missing.pem")},
		{CACertFile: "client_test.go"},
	} {
		bad.URLs = []string{srv.URL}
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// TestProductCheck: the v8 client refuses what is not Elasticsearch; the
// transport vouches for OpenSearch only, whatever the first request is.
func TestProductCheck(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"version":{"number":"1.0"}}`)
	}))
	defer other.Close()
	c, _ := New(Options{URLs: []string{other.URL}})
	if _, err := c.Indices.Exists([]string{"logs"}); err == nil || !strings.Contains(err.Error(), "not Elasticsearch") {
		t.Fatalf("a server that is neither Elasticsearch nor OpenSearch: %v", err)
	}

	c, err := New(Options{URLs: []string{estest.URL(t)}})
	if err != nil {
		t.Fatal(err)
	}
	index := fmt.Sprintf("rl-test-esclient-product-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if res, err := (esapi.IndicesDeleteRequest{Index: []string{index}}).Do(context.Background(), c); err == nil {
			res.Body.Close()
		}
	})
	res, err := esapi.BulkRequest{Index: index, Body: strings.NewReader("{\"create\":{\"_id\":\"1\"}}\n{\"message\":\"x\"}\n")}.Do(context.Background(), c)
	if err != nil {
		t.Fatalf("first request a bulk, to OpenSearch: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"status":201`)) {
		t.Fatalf("bulk: %d %s", res.StatusCode, b)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:p@h:9200/x?y":  "http://REDACTED@h:9200/x?y",
		"https://h:9200":         "https://h:9200",
		"u:p@h:9200":             "REDACTED@h:9200",
		"http://h:9200/a@b":      "http://h:9200/a@b",
		"http://a@b:p@w@h:1/p@q": "http://REDACTED@h:1/p@q",
		"":                       "",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
