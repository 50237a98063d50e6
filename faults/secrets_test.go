package faults

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
	"github.com/replaylink/replaylink/proxy"
)

// The secrets of TestSecretsStayOut, and the encoded forms they travel in.
const (
	secretKeyID    = "faultsKeyId"
	secretKey      = "faultsApiKeySecret7Q2"
	secretUser     = "faultsuser"
	secretPassword = "faults-Passw0rd-9XK"
	secretToken    = "faults-token-secret-4RZ"
	secretAdmin    = "faults-admin-token-8MB"
)

var secretForms = map[string]string{
	"API key":                         secretKey,
	"API key id:key":                  secretKeyID + ":" + secretKey,
	"API key (base64)":                base64.StdEncoding.EncodeToString([]byte(secretKeyID + ":" + secretKey)),
	"password":                        secretPassword,
	"basic auth (base64)":             base64.StdEncoding.EncodeToString([]byte(secretUser + ":" + secretPassword)),
	"OpenReplay token secret":         secretToken,
	"admin token":                     secretAdmin,
	"client's bearer token":           "client-bearer-Zz81",
	"client's cookie":                 "client-cookie-Qq52",
	"client's query secret":           "client-query-Ww63",
	"password in an --es-url (bad)":   "url-pw-Ee74",
	"password in a YAML list (bad)":   "yaml-pw-Rr85",
	"API key beside a username (bad)": "both-key-Tt96",
}

// leakCheck fails for every secret form found in what.
func leakCheck(t *testing.T, where, what string) {
	t.Helper()
	for name, s := range secretForms {
		if strings.Contains(what, s) {
			i := strings.Index(what, s)
			t.Errorf("%s contains the %s: …%s…", where, name, what[max(0, i-120):min(len(what), i+len(s)+40)])
		}
	}
}

// authRecorder is a stand-in Elasticsearch that refuses every request with
// 401, as a cluster with security on does for a wrong key (no real node
// with security runs here). It records the Authorization headers it got,
// to prove the secrets were really in use.
type authRecorder struct {
	URL  string
	mu   sync.Mutex
	auth map[string]bool
}

func startAuthRecorder(t *testing.T) *authRecorder {
	a := &authRecorder{auth: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.auth[r.Header.Get("Authorization")] = true
		a.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `ApiKey, Basic realm="security"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}`)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// saw reports whether an Authorization header carried credentials.
func (a *authRecorder) saw(credentials string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h := range a.auth {
		if strings.HasSuffix(h, " "+credentials) {
			return true
		}
	}
	return false
}

// sendWithSecrets sends requests that carry the client-side secrets and a
// session token signed with the OpenReplay secret.
func sendWithSecrets(t *testing.T, in *instance) {
	t.Helper()
	tok := proxy.SignSessionToken(secretToken, 5550003, 0, time.Now().Add(time.Hour).UnixMilli())
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/item?token=%s&password=%s&i=%d", in.Listen,
			secretForms["client's query secret"], secretForms["client's query secret"], i), nil)
		req.Header.Set("X-OpenReplay-SessionToken", tok)
		req.Header.Set("Authorization", "Bearer "+secretForms["client's bearer token"])
		req.Header.Set("Cookie", "sid="+secretForms["client's cookie"])
		req.Header.Set("Proxy-Authorization", "Basic "+secretForms["client's bearer token"])
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// spoolText is every file of a spool directory, concatenated.
func spoolText(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	return b.String()
}

// TestSecretsStayOut runs replaylink with every secret set, through flags
// and the environment, against a stand-in answering 401 and against the
// real node, runs check, and feeds it bad configurations; no secret may
// appear in its stdout, stderr, /metrics, spool, dead letters or documents.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	runs := 0

	t.Run("API key in the environment, against a 401 stand-in", func(t *testing.T) {
		es := startAuthRecorder(t)
		spool := t.TempDir()
		in := startReplaylink(t, procOptions{command: "serve",
			args: []string{"--upstream", b.URL, "--es-url", es.URL, "--index", "rl-faults-secrets", "--spool-dir", spool,
				"--flush-interval", "200ms", "--openreplay-token-secret", secretToken},
			env: []string{"REPLAYLINK_ES_API_KEY=" + secretKeyID + ":" + secretKey, "REPLAYLINK_ADMIN_TOKEN=" + secretAdmin},
		})
		sendWithSecrets(t, in)
		time.Sleep(3 * time.Second) // bulk attempts meet the 401 and are retried
		if !es.saw(secretForms["API key (base64)"]) {
			t.Errorf("the stand-in never got the API key: the test proves nothing")
		}
		metrics, _ := httpGet("http://" + in.Admin + "/metrics")
		leakCheck(t, "/metrics", metrics)
		leakCheck(t, "the spool", spoolText(t, spool))
		leakCheck(t, "stdout", in.stdout.String())
		leakCheck(t, "stderr", in.stderr.String())
		if !strings.Contains(in.stderr.String(), "401") {
			t.Errorf("stderr does not report the 401 at all:\n%s", tail(in.stderr.String(), 2<<10))
		}
		runs++
	})

	t.Run("password flags, against the real node", func(t *testing.T) {
		x := newIndex(t, esURL)
		spool := t.TempDir()
		pwFile := filepath.Join(t.TempDir(), "token-secret")
		os.WriteFile(pwFile, []byte(secretToken+"\n"), 0o600)
		in := startReplaylink(t, procOptions{command: "serve",
			args: []string{"--upstream", b.URL, "--es-url", esURL, "--index", x.Name, "--spool-dir", spool, "--flush-interval", "200ms",
				"--es-username", secretUser, "--es-password", secretPassword, "--openreplay-token-secret-file", pwFile,
				"--admin-token", secretAdmin},
		})
		sendWithSecrets(t, in)
		if _, ok := x.waitCount(5, 20*time.Second); !ok {
			t.Fatalf("%d documents indexed, want 5", x.count())
		}
		var docs strings.Builder
		for _, d := range x.docs() {
			docs.Write(d.Source)
			if d.Doc.OpenReplaySession.ID != "5550003" || d.Doc.OpenReplaySession.Source != "token" {
				t.Errorf("the signed token was not verified with the secret from the file: %s", d.Source)
			}
		}
		leakCheck(t, "the documents", docs.String())
		if !strings.Contains(docs.String(), "REDACTED") {
			t.Errorf("the query's token and password values are not shown as REDACTED: %.1000s", docs.String())
		}
		metrics, _ := httpGet("http://" + in.Admin + "/metrics")
		leakCheck(t, "/metrics", metrics)
		leakCheck(t, "the spool", spoolText(t, spool))
		leakCheck(t, "stdout", in.stdout.String())
		leakCheck(t, "stderr", in.stderr.String())
		runs++
	})

	t.Run("check", func(t *testing.T) {
		es := startAuthRecorder(t)
		for _, c := range []struct {
			name string
			args []string
			env  []string
			ok   bool
		}{
			{"API key, 401", []string{"--es-url", es.URL, "--index", "rl-faults-secrets"}, []string{"REPLAYLINK_ES_API_KEY=" + secretKeyID + ":" + secretKey}, false},
			{"password, 401", []string{"--es-url", es.URL, "--es-username", secretUser, "--es-password", secretPassword}, nil, false},
			{"API key, real node", []string{"--es-url", esURL, "--es-api-key", secretKeyID + ":" + secretKey, "--index", "rl-faults-secrets-check"}, nil, true},
		} {
			cmd := exec.Command(replaylinkBin, append([]string{"check"}, c.args...)...)
			cmd.Env = cleanEnv(c.env)
			out, err := cmd.CombinedOutput()
			leakCheck(t, "check ("+c.name+")", string(out))
			if err == nil && !c.ok {
				t.Errorf("check (%s) succeeded against a cluster refusing the credentials:\n%s", c.name, out)
			}
			if len(out) == 0 {
				t.Errorf("check (%s) printed nothing", c.name)
			}
			runs++
		}
		if !es.saw(secretForms["API key (base64)"]) {
			t.Errorf("check never sent the API key to the stand-in: the test proves nothing")
		}
		esDo(esURL, http.MethodDelete, "/rl-faults-secrets-check", nil)
		esDo(esURL, http.MethodDelete, "/_index_template/replaylink-rl-faults-secrets-check", nil)
	})

	t.Run("bad configurations", func(t *testing.T) {
		yaml := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(yaml, []byte("es-password:\n  - "+secretForms["password in a YAML list (bad)"]+"\n  - x\n"), 0o600)
		for _, c := range []struct {
			name string
			args []string
			env  []string
		}{
			{"password in the URL", []string{"serve", "--upstream", b.URL, "--es-url", "http://u:" + secretForms["password in an --es-url (bad)"] + "@127.0.0.1:9/"}, nil},
			{"API key beside a username", []string{"serve", "--upstream", b.URL, "--es-url", esURL, "--es-api-key", secretForms["API key beside a username (bad)"], "--es-username", "u"}, nil},
			{"a secret in a YAML list", []string{"serve", "--upstream", b.URL, "--config", yaml}, nil},
			{"bad flag beside secrets", []string{"serve", "--upstream", b.URL, "--flush-interval", "soon"},
				[]string{"REPLAYLINK_ES_PASSWORD=" + secretPassword, "REPLAYLINK_OPENREPLAY_TOKEN_SECRET=" + secretToken, "REPLAYLINK_ADMIN_TOKEN=" + secretAdmin}},
			{"check with a password in the URL", []string{"check", "--es-url", "http://u:" + secretForms["password in an --es-url (bad)"] + "@127.0.0.1:9/"}, nil},
			{"check against a closed port", []string{"check", "--es-url", "http://127.0.0.1:9/", "--es-api-key", secretKeyID + ":" + secretKey}, nil},
		} {
			cmd := exec.Command(replaylinkBin, c.args...)
			cmd.Env = cleanEnv(c.env)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("%s: accepted:\n%s", c.name, out)
			}
			if len(out) == 0 {
				t.Errorf("%s: refused without a word", c.name)
			}
			leakCheck(t, c.name, string(out))
			runs++
		}
	})
	r.add("runs", runs)
	r.add("secret_forms", len(secretForms))
}
