package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// esIndex is a test's own index on the search node; it and replaylink's
// template for it are deleted when the test ends.
type esIndex struct {
	t    testing.TB
	url  string
	Name string
}

var notIndexChar = regexp.MustCompile(`[^a-z0-9-]+`)

func newIndex(t testing.TB, esURL string) *esIndex {
	name := "rl-faults-" + notIndexChar.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 80 {
		name = name[:80]
	}
	name = fmt.Sprintf("%s-%06d", name, rand.IntN(1_000_000))
	x := &esIndex{t: t, url: esURL, Name: name}
	t.Cleanup(func() {
		// The node may be down if the test failed mid-outage; best effort.
		esDo(esURL, http.MethodDelete, "/"+name, nil)
		esDo(esURL, http.MethodDelete, "/_index_template/replaylink-"+name, nil)
	})
	return x
}

// esDo sends one request to the node and returns status and body.
func esDo(base, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (x *esIndex) must(method, path string, body any) []byte {
	x.t.Helper()
	st, b, err := esDo(x.url, method, path, body)
	if err != nil || st >= 300 {
		x.t.Fatalf("%s %s: %d %v %s", method, path, st, err, b)
	}
	return b
}

// count refreshes the index and counts its documents (-1 when it cannot).
func (x *esIndex) count() int {
	if st, _, err := esDo(x.url, http.MethodPost, "/"+x.Name+"/_refresh", nil); err != nil || st != 200 {
		return -1
	}
	st, b, err := esDo(x.url, http.MethodGet, "/"+x.Name+"/_count", nil)
	if err != nil || st != 200 {
		return -1
	}
	var c struct{ Count int }
	json.Unmarshal(b, &c)
	return c.Count
}

// accessDoc is what the tests read of a document.
type accessDoc struct {
	ID     string `json:"-"`
	Source json.RawMessage
	Doc    struct {
		Message           string   `json:"message"`
		Level             string   `json:"level"`
		Tags              []string `json:"tags"`
		OpenReplaySession struct {
			ID     string `json:"id"`
			Source string `json:"source"`
		} `json:"openReplaySession"`
		Event struct {
			Dataset string `json:"dataset"`
		} `json:"event"`
		HTTP struct {
			Request struct {
				ID string `json:"id"`
			} `json:"request"`
			Response struct {
				StatusCode int `json:"status_code"`
			} `json:"response"`
		} `json:"http"`
		Replaylink struct {
			Truncated bool `json:"truncated"`
		} `json:"replaylink"`
	}
}

// docs returns every document of the index, scrolling.
func (x *esIndex) docs() []accessDoc {
	x.t.Helper()
	x.must(http.MethodPost, "/"+x.Name+"/_refresh", nil)
	var out []accessDoc
	body := x.must(http.MethodPost, "/"+x.Name+"/_search?scroll=1m", map[string]any{"size": 5000, "sort": []string{"_doc"}})
	for {
		var page struct {
			ScrollID string `json:"_scroll_id"`
			Hits     struct {
				Hits []struct {
					ID     string          `json:"_id"`
					Source json.RawMessage `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			x.t.Fatalf("search answer: %v", err)
		}
		for _, h := range page.Hits.Hits {
			d := accessDoc{ID: h.ID, Source: h.Source}
			if err := json.Unmarshal(h.Source, &d.Doc); err != nil {
				x.t.Fatalf("document %s is not the expected JSON: %v: %s", h.ID, err, h.Source)
			}
			out = append(out, d)
		}
		if len(page.Hits.Hits) == 0 {
			esDo(x.url, http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": page.ScrollID})
			return out
		}
		body = x.must(http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": page.ScrollID})
	}
}

// matchPhrase runs OpenReplay's own query for a session and returns the hits.
func (x *esIndex) matchPhrase(session string) int {
	x.t.Helper()
	x.must(http.MethodPost, "/"+x.Name+"/_refresh", nil)
	n, err := openReplayHits(x.url, x.Name, session)
	if err != nil {
		x.t.Fatal(err)
	}
	return n
}

// openReplayHits runs OpenReplay's query (match_phrase on message for the
// session's marker, size 1000) on the node at base and counts the hits.
func openReplayHits(base, index, session string) (int, error) {
	st, b, err := esDo(base, http.MethodPost, "/"+index+"/_search", map[string]any{
		"size":  1000,
		"query": map[string]any{"match_phrase": map[string]any{"message": "openReplaySession.id=" + session}},
	})
	if err != nil {
		return 0, err
	}
	if st != http.StatusOK {
		return 0, fmt.Errorf("search %s: %d %.200s", index, st, b)
	}
	var r struct {
		Hits struct {
			Hits []json.RawMessage `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("search %s: %v", index, err)
	}
	return len(r.Hits.Hits), nil
}

// waitCount polls until the index holds at least want documents.
func (x *esIndex) waitCount(want int, d time.Duration) (time.Duration, bool) {
	return waitFor(d, func() bool {
		ok := x.count() >= want
		if !ok {
			time.Sleep(200 * time.Millisecond)
		}
		return ok
	})
}
