package setup

// These tests run against the request-checking stand-in (standin_test.go),
// not the real node: the test node is OpenSearch without x-pack, so it has
// no API keys, no ILM and no data stream lifecycles.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/esclient"
)

func standInNode(t *testing.T, srv *httptest.Server, o *Options) *node {
	t.Helper()
	o.Client.URLs = []string{srv.URL}
	mustPrepare(t, o)
	c := connect(context.Background(), o)
	if c.exit != ExitOK {
		t.Fatalf("connect: %d %+v %+v %+v", c.exit, c.reachable, c.auth, c.version)
	}
	return c.node
}

func TestAPIKeysLeastPrivilegeAndIdempotent(t *testing.T) {
	for _, dataStream := range []bool{false, true} {
		s, srv := newStandIn(t, "8.15.0")
		s.apiKey = esclient.EncodeAPIKey("admin:admin-secret-value")
		o := configured(Options{DataStream: dataStream, APIKeys: true})
		o.Client.APIKey = "admin:admin-secret-value"
		n := standInNode(t, srv, &o)
		wantNames := `["logs"]`
		if dataStream {
			wantNames = `["logs-replaylink-default","logs"]`
		}

		st, keys := apiKeys(context.Background(), n, &o)
		if st.outcome != Changed || len(keys) != 2 || keys[0].secret == "" || keys[1].secret == "" {
			t.Fatalf("first run: %+v, keys %+v", st, keys)
		}
		want := map[string]string{
			WriterKeyName: `{"replaylink-writer":{"cluster":["monitor"],"indices":[{"names":` + wantNames + `,"privileges":["index","auto_configure","view_index_metadata"]}]}}`,
			ReaderKeyName: `{"openreplay-reader":{"cluster":["monitor"],"indices":[{"names":` + wantNames + `,"privileges":["read"]}]}}`,
		}
		for _, k := range s.keys {
			var compact bytes.Buffer
			json.Compact(&compact, k.Roles)
			if compact.String() != want[k.Name] {
				t.Errorf("data stream %v: key %s has role descriptors\n%s\nwant\n%s", dataStream, k.Name, compact.String(), want[k.Name])
			}
		}

		st, again := apiKeys(context.Background(), n, &o)
		if st.outcome != Unchanged || len(again) != 2 || again[0].id != keys[0].id || again[0].secret != "" {
			t.Fatalf("second run: %+v %+v", st, again)
		}
		if got := s.count("POST /_security/api_key"); got != 2 {
			t.Errorf("%d keys created over two runs, want 2", got)
		}

		var out bytes.Buffer
		printPaste(&out, &o, n.info, keys)
		for _, w := range []string{"API KEY ID:  " + keys[1].id, "API Key:     " + keys[1].secret, "Indexes:     logs", "REPLAYLINK_ES_API_KEY=" + keys[0].id + ":" + keys[0].secret, "URL:         " + srv.URL} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("paste block lacks %q:\n%s", w, out.String())
			}
		}
		if strings.Contains(out.String(), "admin-secret-value") {
			t.Error("the paste block prints the admin's key")
		}
		out.Reset()
		printPaste(&out, &o, n.info, again)
		if !strings.Contains(out.String(), "shown only when it was created") {
			t.Errorf("second run's paste block does not say where the secret went:\n%s", out.String())
		}
	}
}

func TestAPIKeyFailuresNameCauseAndFix(t *testing.T) {
	for _, c := range []struct {
		name     string
		prepare  func(*standIn)
		wantNote string
		wantFix  string
	}{
		{"security off", func(s *standIn) { s.security = false }, "API keys are unavailable", "xpack.security.enabled"},
		{"no privilege", func(s *standIn) { s.canManageKeys = false }, "403", "manage_api_key"},
		{"key with other privileges", func(s *standIn) {
			s.keys = append(s.keys, standInKey{ID: "old1", Name: WriterKeyName, Roles: json.RawMessage(`{"r":{"cluster":["all"],"indices":[{"names":["*log*"],"privileges":["all"]}]}}`)})
		}, "exists with other privileges", `DELETE /_security/api_key {"ids":["old1"]}`},
	} {
		s, srv := newStandIn(t, "8.15.0")
		c.prepare(s)
		o := configured(Options{APIKeys: true})
		n := standInNode(t, srv, &o)
		st, keys := apiKeys(context.Background(), n, &o)
		if st.outcome != Failed || keys != nil || !strings.Contains(st.note, c.wantNote) || !strings.Contains(st.fix, c.wantFix) {
			t.Errorf("%s: %+v, want failed with %q and fix %q", c.name, st, c.wantNote, c.wantFix)
		}
	}
}

func TestRetentionDataStreamLifecycle(t *testing.T) {
	s, srv := newStandIn(t, "8.15.0")
	o := configured(Options{DataStream: true})
	n := standInNode(t, srv, &o)
	if st := retention(context.Background(), n, &o); st.outcome != Changed || s.lifecycle[DataStreamName] != "30d" {
		t.Fatalf("first run: %+v, lifecycle %q", st, s.lifecycle[DataStreamName])
	}
	if st := retention(context.Background(), n, &o); st.outcome != Unchanged || !strings.Contains(st.note, "30d") {
		t.Fatalf("second run: %+v", st)
	}
	o.Retention = 90 * 24 * time.Hour
	if st := retention(context.Background(), n, &o); st.outcome != Changed || s.lifecycle[DataStreamName] != "90d" {
		t.Fatalf("new retention: %+v, lifecycle %q", st, s.lifecycle[DataStreamName])
	}
	if s.count("PUT /_ilm") != 0 {
		t.Error("8.11+ got an ILM policy besides its lifecycle")
	}
}

func TestRetentionILMBefore811(t *testing.T) {
	s, srv := newStandIn(t, "8.10.4")
	s.templatePolicy = ILMPolicyName
	o := configured(Options{DataStream: true, Retention: 14 * 24 * time.Hour})
	n := standInNode(t, srv, &o)
	if st := retention(context.Background(), n, &o); st.outcome != Changed {
		t.Fatalf("first run: %+v", st)
	}
	var pol map[string]any
	json.Unmarshal(s.policies[ILMPolicyName], &pol)
	b, _ := json.Marshal(pol)
	if want := `{"phases":{"delete":{"actions":{"delete":{}},"min_age":"14d"},"hot":{"actions":{"rollover":{"max_age":"1d","max_primary_shard_size":"50gb"}}}}}`; string(b) != want {
		t.Errorf("policy %s\nwant %s", b, want)
	}
	if got := s.settings[".ds-"+DataStreamName+"-000001"]; got != ILMPolicyName {
		t.Errorf("backing index has policy %q", got)
	}
	puts := s.count("PUT ")
	if st := retention(context.Background(), n, &o); st.outcome != Unchanged {
		t.Fatalf("second run: %+v", st)
	}
	if s.count("PUT ") != puts {
		t.Error("the second run wrote something")
	}
	if s.count("GET /_data_stream/"+DataStreamName+"/_lifecycle") != 0 {
		t.Error("asked a pre-8.11 node for a data stream lifecycle")
	}
}

func TestRetentionILMNeedsTheTemplateToNameIt(t *testing.T) {
	s, srv := newStandIn(t, "7.17.20")
	o := configured(Options{DataStream: true})
	n := standInNode(t, srv, &o)
	st := retention(context.Background(), n, &o)
	if st.outcome != Failed || !strings.Contains(st.note, "later rollovers") || !strings.Contains(st.fix, `"index.lifecycle.name": "replaylink-logs"`) {
		t.Fatalf("%+v", st)
	}
	if s.policies[ILMPolicyName] == nil {
		t.Error("the policy was not written")
	}
}

func TestRetentionSkipsPlainIndex(t *testing.T) {
	s, srv := newStandIn(t, "8.15.0")
	o := configured(Options{})
	n := standInNode(t, srv, &o)
	st := retention(context.Background(), n, &o)
	if st.outcome != Skipped || !strings.Contains(st.note, "--data-stream") || !strings.Contains(st.note, "30d") {
		t.Fatalf("%+v", st)
	}
	if len(s.requests) != 1 { // GET / only
		t.Errorf("requests %q: a skipped step must not touch the node", s.requests)
	}
}

func TestESDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour: "30d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 45 * time.Second: "45s", 1500 * time.Millisecond: "1500ms",
	} {
		if got := esDuration(d); got != want {
			t.Errorf("esDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCheckUnauthorized(t *testing.T) {
	s, srv := newStandIn(t, "8.15.0")
	s.apiKey = esclient.EncodeAPIKey("id:right")
	for _, key := range []string{"", "id:wrong-key-value"} {
		var out bytes.Buffer
		o := configured(Options{})
		o.Client.URLs = []string{srv.URL}
		o.Client.APIKey = key
		if code := Check(context.Background(), &out, o); code != ExitUnauthorized {
			t.Errorf("key %q: exit %d, want %d\n%s", key, code, ExitUnauthorized, out.String())
		}
		if !strings.Contains(out.String(), "auth accepted:     failed: the node answered 401") || !strings.Contains(out.String(), "fix: ") {
			t.Errorf("output:\n%s", out.String())
		}
		if strings.Contains(out.String(), "wrong-key-value") {
			t.Error("check printed the API key")
		}
	}
}

func TestCheckUnreachable(t *testing.T) {
	dead := httptest.NewServer(nil)
	dead.Close()
	var out bytes.Buffer
	o := configured(Options{})
	o.Client.URLs = []string{strings.Replace(dead.URL, "http://", "http://user:pw-secret@", 1)}
	if code := Check(context.Background(), &out, o); code != ExitUnreachable {
		t.Fatalf("exit %d, want %d\n%s", code, ExitUnreachable, out.String())
	}
	if !strings.Contains(out.String(), "node reachable:    failed: cannot connect to "+dead.URL) {
		t.Errorf("the line does not name the address:\n%s", out.String())
	}
	if strings.Contains(out.String(), "pw-secret") {
		t.Error("check printed the password from the URL")
	}
	out.Reset()
	if code := Run(context.Background(), &out, o); code != ExitUnreachable || !strings.Contains(out.String(), "node reachable:    failed") {
		t.Errorf("setup against a dead node: exit %d\n%s", code, out.String())
	}
}

// TestPasteBlockFitsTheEngineAndTheURL: the paste block sends a user to
// setup --api-keys only on Elasticsearch, says how OpenReplay and
// replaylink get into OpenSearch instead, and warns about a loopback URL
// (OpenReplay connects from its own servers) and only then.
func TestPasteBlockFitsTheEngineAndTheURL(t *testing.T) {
	for _, tc := range []struct {
		product, url, user string
		want, not          []string
	}{
		{"Elasticsearch", "https://es.example.com:9200", "", []string{"setup --api-keys creates one", "REPLAYLINK_ES_API_KEY"}, []string{"loopback", "OpenSearch"}},
		{"Elasticsearch", "http://127.0.0.1:9200", "", []string{"http://127.0.0.1:9200 is a loopback address"}, nil},
		{"Elasticsearch", "http://localhost:9200", "", []string{"is a loopback address"}, nil},
		{"Elasticsearch", "http://[::1]:9200", "", []string{"is a loopback address"}, nil},
		{"OpenSearch", "https://search.internal:9200", "", []string{"OpenSearch has no API keys", "answered setup without credentials", "(no credentials"}, []string{"--api-keys", "REPLAYLINK_ES_API_KEY", "loopback"}},
		{"OpenSearch", "https://search.internal:9200", "admin", []string{"wants credentials", "anonymous", "REPLAYLINK_ES_USERNAME=", "REPLAYLINK_ES_PASSWORD_FILE="}, []string{"--api-keys", "REPLAYLINK_ES_API_KEY", "loopback"}},
	} {
		o := configured(Options{})
		mustPrepare(t, &o)
		o.Client.URLs = []string{tc.url}
		o.Client.Username = tc.user
		var out bytes.Buffer
		printPaste(&out, &o, info{Product: tc.product}, nil)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s at %s: the paste block lacks %q:\n%s", tc.product, tc.url, w, out.String())
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out.String(), w) {
				t.Errorf("%s at %s: the paste block says %q:\n%s", tc.product, tc.url, w, out.String())
			}
		}
	}
}
