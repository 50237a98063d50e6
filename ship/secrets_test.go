package ship

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/esclient"
)

// refuseCredentials answers every request as a secured Elasticsearch
// refusing the credentials it was sent.
func refuseCredentials(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials"},"status":401}`)
}

// TestSecretsStayOut: a refused key, a URL with a password, a logger
// capturing everything: no secret may come out of the template install or
// the shipper, in any encoding. (esclient's TestSecretsStayOut covers the
// client's own errors.)
func TestSecretsStayOut(t *testing.T) {
	const apiKey, password = "keyid:TOPSECRETKEY", "TOPSECRETPASSWORD"
	secrets := []string{"TOPSECRETKEY", password, esclient.EncodeAPIKey(apiKey), "VE9QU0VDUkVU"}
	check := func(where, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Fatalf("%s shows a secret (%q): %s", where, sec, s)
			}
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(refuseCredentials))
	defer srv.Close()

	c, err := esclient.New(esclient.Options{URLs: []string{srv.URL}, APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = InstallTemplate(context.Background(), c, Target{Index: "logs"})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("InstallTemplate with a refused key: %v", err)
	}
	check("InstallTemplate's error", err.Error())

	var logs lockedBuffer
	opts := fastOptions(t, strings.Replace(srv.URL, "http://", "http://someone:"+password+"@", 1))
	opts.Client.APIKey = apiKey
	opts.InstallTemplate = true
	opts.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, p, 0, 10)
	waitFor(t, "retries of refused bulks", func() bool { return p.Stats().Retried > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Close(ctx)
	out := strings.Join(logs.lines(), "\n")
	if !strings.Contains(out, "security_exception") {
		t.Fatalf("the logs do not say why Elasticsearch refused: %s", out)
	}
	check("the logs", out)
}
