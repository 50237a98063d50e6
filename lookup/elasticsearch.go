package lookup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// Transport sends a request to Elasticsearch; the *esclient.Client from
// esclient.New is one.
type Transport interface {
	Perform(*http.Request) (*http.Response, error)
}

// maxResponseBytes bounds one search answer (MaxLimit documents of the
// largest size replaylink writes fit well within it).
const maxResponseBytes = 256 << 20

// archive finds shipped documents in Elasticsearch.
type archive struct {
	es    Transport
	index string
	// greeted is set once GET / has succeeded: the client only trusts an
	// OpenSearch node after ship's transport has seen its root endpoint.
	greeted atomic.Bool
}

// find returns the earliest documents whose field (a keyword) equals value,
// filtered by q, and whether more matched than were returned.
func (a *archive) find(ctx context.Context, field, value string, q query) ([]logDoc, bool, error) {
	if err := a.greet(ctx); err != nil {
		return nil, false, err
	}
	filter := []any{map[string]any{"term": map[string]any{field: value}}}
	if lv := q.levels(); lv != nil {
		filter = append(filter, map[string]any{"terms": map[string]any{"level": lv}})
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		r := map[string]any{}
		if !q.From.IsZero() {
			r["gte"] = q.From.Format(time.RFC3339Nano)
		}
		if !q.To.IsZero() {
			r["lte"] = q.To.Format(time.RFC3339Nano)
		}
		filter = append(filter, map[string]any{"range": map[string]any{"utc_time": r}})
	}
	body, _ := json.Marshal(map[string]any{
		"size":             q.Limit,
		"track_total_hits": true,
		"query":            map[string]any{"bool": map[string]any{"filter": filter}},
		"sort":             []any{map[string]any{"utc_time": map[string]any{"order": "asc", "unmapped_type": "date"}}},
	})
	status, resp, err := a.do(ctx, http.MethodPost, "/"+url.PathEscape(a.index)+"/_search", body)
	if err != nil {
		return nil, false, err
	}
	if status == http.StatusNotFound && esErrorType(resp) == "index_not_found_exception" {
		return nil, false, nil // nothing shipped yet
	}
	if status != http.StatusOK {
		return nil, false, fmt.Errorf("search in %s answered %d: %s", a.index, status, esReason(resp))
	}
	var r struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID     string          `json:"_id"`
				Source json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, false, fmt.Errorf("search in %s: unreadable answer: %v", a.index, err)
	}
	docs := make([]logDoc, 0, len(r.Hits.Hits))
	for _, h := range r.Hits.Hits {
		if d, ok := parseDoc(h.ID, h.Source); ok {
			docs = append(docs, d)
		}
	}
	return docs, r.Hits.Total.Value > len(r.Hits.Hits), nil
}

func (a *archive) greet(ctx context.Context) error {
	if a.greeted.Load() {
		return nil
	}
	status, resp, err := a.do(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET / answered %d: %s", status, esReason(resp))
	}
	a.greeted.Store(true)
	return nil
}

func (a *archive) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, nil)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.es.Perform(req)
	if err != nil {
		return 0, nil, fmt.Errorf("elasticsearch unreachable: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading elasticsearch's answer: %w", err)
	}
	if len(b) > maxResponseBytes {
		return 0, nil, errors.New("elasticsearch's answer is larger than 256 MiB: lower limit")
	}
	return res.StatusCode, b, nil
}

// esErrorType and esReason read Elasticsearch's error object.
func esErrorType(body []byte) string {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Type
}

func esReason(body []byte) string {
	var e struct {
		Error struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
		return e.Error.Type + ": " + e.Error.Reason
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return string(bytes.TrimSpace(body))
}
