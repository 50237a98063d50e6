package lookup

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/internal/estest"
)

// testIndex creates a unique index on the real node, mapped like ship's
// template maps replaylink's fields, and deletes it after the test.
func testIndex(t *testing.T, esURL string) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "rl-test-" + strings.ToLower(t.Name()) + "-" + hex.EncodeToString(b)
	mapping := `{"mappings":{"properties":{
		"message":{"type":"text"},"utc_time":{"type":"date"},"@timestamp":{"type":"date"},
		"level":{"type":"keyword"},"tags":{"type":"keyword"},
		"openReplaySession":{"properties":{"id":{"type":"keyword"}}},
		"http":{"properties":{"request":{"properties":{"id":{"type":"keyword"},"method":{"type":"keyword"}}},"response":{"properties":{"status_code":{"type":"integer"}}}}},
		"event":{"properties":{"duration":{"type":"long"},"dataset":{"type":"keyword"}}}}}}`
	esDo(t, http.MethodPut, esURL+"/"+name, mapping, http.StatusOK)
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, esURL+"/"+name, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	})
	return name
}

func esDo(t *testing.T, method, url, body string, want int) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return b
}

// bulkIndex indexes samples with their _ids and refreshes, as the shipper would.
func bulkIndex(t *testing.T, esURL, index string, docs []sample) {
	t.Helper()
	var buf bytes.Buffer
	for _, d := range docs {
		fmt.Fprintf(&buf, `{"create":{"_index":%q,"_id":%q}}`+"\n%s\n", index, d.id, d.src)
	}
	b := esDo(t, http.MethodPost, esURL+"/_bulk?refresh=true", buf.String(), http.StatusOK)
	if bytes.Contains(b, []byte(`"errors":true`)) {
		t.Fatalf("bulk: %s", b)
	}
}

func TestLookupAgainstSearchNode(t *testing.T) {
	esURL := estest.URL(t)
	index := testIndex(t, esURL)
	docs := sampleSession("7391048572913", t0)
	bulkIndex(t, esURL, index, docs[:4])                    // shipped
	bulkIndex(t, esURL, index, sampleSession("12", t0)[:2]) // another session
	// Recent holds the last two shipped ones again and two not shipped yet.
	rec := newStore(docs[2:]...)

	client, err := esclient.New(esclient.Options{URLs: []string{esURL}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Options{MemoryStore: rec, ES: client, Index: index})

	a := decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs"))
	if a.Count != 6 || len(a.Warnings) != 0 {
		t.Fatalf("count %d warnings %q, want the 6 distinct documents", a.Count, a.Warnings)
	}
	wantIDs := []string{"7391048572913-a1", "7391048572913-b1", "7391048572913-b2", "7391048572913-a2", "7391048572913-b3", "7391048572913-a3"}
	for i, l := range a.Logs {
		if got := logField(t, l, "_id"); got != wantIDs[i] {
			t.Errorf("log %d: _id %q, want %q", i, got, wantIDs[i])
		}
	}

	a = decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs?level=error&limit=5"))
	if a.Count != 2 {
		t.Fatalf("level=error: %d logs, want 2", a.Count)
	}
	a = decodeAnswer(t, get(t, h, "/sessions/7391048572913/logs?limit=2"))
	if a.Count != 2 || !a.Truncated || logField(t, a.Logs[1], "_id") != "7391048572913-b1" {
		t.Fatalf("limit=2: count %d truncated %v", a.Count, a.Truncated)
	}
	a = decodeAnswer(t, get(t, h, "/requests/req-1?format=json"))
	if a.Count != 4 { // both fixture sessions use the request id req-1
		t.Fatalf("request req-1: %d logs, want 4", a.Count)
	}

	// The command line, straight to Elasticsearch.
	code, out, errOut := runCLI(t, CLIOptions{Limit: 1000, Session: "7391048572913", ES: client, Index: index, JSON: true})
	var cli answer
	if code != CLIOK || json.Unmarshal([]byte(out), &cli) != nil || cli.Count != 4 {
		t.Fatalf("lookup --es-url: exit %d count %d %s", code, cli.Count, errOut)
	}
}
