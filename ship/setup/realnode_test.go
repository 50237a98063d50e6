package setup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/internal/estest"
	"github.com/replaylink/replaylink/ship"
)

// These tests run against the real search node (OpenSearch 2.19.1 here).

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// cleanUp deletes the index and template of index after the test, unless
// they existed before it (the logs index may be shared with other tests).
func cleanUp(t *testing.T, esURL, index string) {
	t.Helper()
	tmpl := ship.Target{Index: index}.TemplateName()
	indexBefore, _ := httpDo(t, http.MethodHead, esURL+"/"+index, "")
	tmplBefore, _ := httpDo(t, http.MethodGet, esURL+"/_index_template/"+tmpl, "")
	t.Cleanup(func() {
		if indexBefore == http.StatusNotFound {
			httpDo(t, http.MethodDelete, esURL+"/"+index, "")
		}
		if tmplBefore == http.StatusNotFound {
			httpDo(t, http.MethodDelete, esURL+"/_index_template/"+tmpl, "")
		}
	})
}

func uniqueIndex(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "rl-test-" + strings.ToLower(t.Name()) + "-" + hex.EncodeToString(b)
}

func outcomes(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 0 {
			m[name] = strings.TrimSuffix(f[0], ":")
		}
	}
	return m
}

func TestSetupIsIdempotentOnSearchNode(t *testing.T) {
	esURL := estest.URL(t)
	index := uniqueIndex(t)
	cleanUp(t, esURL, index)
	o := configured(Options{Index: index})
	o.Client.URLs = []string{esURL}

	var out bytes.Buffer
	if code := Run(context.Background(), &out, o); code != ExitOK {
		t.Fatalf("first run: exit %d\n%s", code, out.String())
	}
	t.Logf("first run:\n%s", out.String())
	first := outcomes(out.String())
	for step, want := range map[string]string{
		"node": "ok", "index template": "changed", "write target": "changed", "target mappings": "ok",
		"starter document": "changed", "retention": "skipped",
	} {
		if first[step] != want {
			t.Errorf("first run: %s is %q, want %q\n%s", step, first[step], want, out.String())
		}
	}
	if !strings.Contains(out.String(), "an ISM policy can only delete whole indices") || !strings.Contains(out.String(), "Indexes:     logs") {
		t.Errorf("first run output:\n%s", out.String())
	}

	out.Reset()
	if code := Run(context.Background(), &out, o); code != ExitOK {
		t.Fatalf("second run: exit %d\n%s", code, out.String())
	}
	t.Logf("second run:\n%s", out.String())
	second := outcomes(out.String())
	for step, want := range map[string]string{
		"index template": "unchanged", "write target": "unchanged", "target mappings": "ok", "starter document": "unchanged", "retention": "skipped",
	} {
		if second[step] != want {
			t.Errorf("second run: %s is %q, want %q\n%s", step, second[step], want, out.String())
		}
	}
	if !strings.Contains(out.String(), "nothing changed: the node was already set up") {
		t.Errorf("the second run does not say that nothing changed:\n%s", out.String())
	}

	// OpenReplay's "Add" test: {"size":1} on the index finds the starter.
	status, body := httpDo(t, http.MethodPost, esURL+"/"+index+"/_search", `{"size":1}`)
	if status != 200 || !strings.Contains(body, StarterID) {
		t.Errorf("size:1 search: %d %s", status, body)
	}

	out.Reset()
	o.APIKeys = true
	code := Run(context.Background(), &out, o)
	if code != ExitMisconfigured || outcomes(out.String())["api keys"] != "failed" || !strings.Contains(out.String(), "OpenSearch has no API keys") {
		t.Errorf("--api-keys on OpenSearch: exit %d\n%s", code, out.String())
	}
	// The paste block is for the engine found: on OpenSearch it never
	// sends the user to setup --api-keys (which just failed), and it
	// warns that the node's loopback URL is out of OpenReplay's reach.
	_, paste, ok := strings.Cut(out.String(), "In OpenReplay:")
	if !ok {
		t.Fatalf("no paste block:\n%s", out.String())
	}
	for _, bad := range []string{"--api-keys", "REPLAYLINK_ES_API_KEY"} {
		if strings.Contains(paste, bad) {
			t.Errorf("the paste block on OpenSearch says %q:\n%s", bad, paste)
		}
	}
	for _, want := range []string{"OpenSearch has no API keys", "is a loopback address", "(no credentials: the node takes requests without them)"} {
		if !strings.Contains(paste, want) {
			t.Errorf("the paste block on OpenSearch lacks %q:\n%s", want, paste)
		}
	}
}

func TestCheckPassesOnSearchNode(t *testing.T) {
	esURL := estest.URL(t)
	// check works on OpenReplay's index, logs, which the end-to-end test
	// uses at the same time: it is left in place (deleting it under that
	// test fails its searches). The probe deletes itself.
	o := configured(Options{})
	o.Client.URLs = []string{esURL}
	var out bytes.Buffer
	if code := Run(context.Background(), &out, o); code != ExitOK {
		t.Fatalf("setup: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := Check(context.Background(), &out, o); code != ExitOK {
		t.Fatalf("check: exit %d\n%s", code, out.String())
	}
	t.Logf("check:\n%s", out.String())
	got := outcomes(out.String())
	for _, step := range []string{"node reachable", "auth accepted", "version", "template present", "target mappings", "write probe", "refresh", "openreplay query", "delete probe"} {
		if got[step] != "ok" {
			t.Errorf("%s: %q\n%s", step, got[step], out.String())
		}
	}
	if !strings.Contains(out.String(), "version:           ok: OpenSearch 2.") || !strings.Contains(out.String(), "node reachable:    ok: "+esURL) {
		t.Errorf("output:\n%s", out.String())
	}
	// The probe is gone.
	_, body := httpDo(t, http.MethodPost, esURL+"/logs/_search?q=tags:replaylink-check", `{}`)
	if !strings.Contains(body, `"hits":[]`) {
		t.Errorf("a probe is left in logs: %s", body)
	}
}

func TestCheckMisconfiguredOnSearchNode(t *testing.T) {
	esURL := estest.URL(t)
	o := configured(Options{Index: uniqueIndex(t)}) // no setup: no template for it
	o.Client.URLs = []string{esURL}
	var out bytes.Buffer
	if code := Check(context.Background(), &out, o); code != ExitMisconfigured {
		t.Fatalf("exit %d, want %d\n%s", code, ExitMisconfigured, out.String())
	}
	if got := outcomes(out.String()); got["template present"] != "failed" || !strings.Contains(out.String(), "fix: run replaylink setup") {
		t.Errorf("output:\n%s", out.String())
	}
}
