package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/replaylink/replaylink/internal/excerpt"
)

// node talks to Elasticsearch (or OpenSearch) through the client replaylink
// ships with, so set-up and check see what shipping will see.
type node struct {
	es      *elasticsearch.Client
	address string // the first URL, without credentials: safe to print
	info    info
}

// info is what GET / says about the node.
type info struct {
	Product string // "Elasticsearch" or "OpenSearch"
	Version string // e.g. "8.15.0"
	major   int
	minor   int
}

func (i info) openSearch() bool { return i.Product == "OpenSearch" }

// atLeast compares the Elasticsearch version; false for OpenSearch.
func (i info) atLeast(major, minor int) bool {
	return !i.openSearch() && (i.major > major || i.major == major && i.minor >= minor)
}

func (i info) String() string { return i.Product + " " + i.Version }

// reply is an answer from the node.
type reply struct {
	status int
	body   []byte
}

func (r reply) ok() bool { return r.status >= 200 && r.status < 300 }

// reason reads Elasticsearch's error object: "type: reason".
func (r reply) reason() string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(r.body, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Type != "" {
			return obj.Type + ": " + obj.Reason
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil {
			return s
		}
	}
	b := bytes.TrimSpace(r.body)
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	if len(b) == 0 {
		return http.StatusText(r.status)
	}
	return string(b)
}

// errorType is Elasticsearch's error type, e.g. index_not_found_exception.
func (r reply) errorType() string {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Type
}

// do sends one request. body may be nil, []byte or anything JSON encodes.
func (n *node) do(ctx context.Context, method, path string, body any) (reply, error) {
	u, err := url.Parse(path)
	if err != nil {
		return reply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			if b, err = json.Marshal(body); err != nil {
				return reply{}, err
			}
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := n.es.Perform(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return reply{}, fmt.Errorf("reading the answer to %s %s: %w", method, u.Path, err)
	}
	return reply{status: res.StatusCode, body: b}, nil
}

// hello reads GET /, which also makes the client trust an OpenSearch node
// (esclient recognises it there). The first error is returned as is,
// for the caller to classify.
func (n *node) hello(ctx context.Context) (reply, error) {
	r, err := n.do(ctx, http.MethodGet, "/", nil)
	if err != nil || !r.ok() {
		return r, err
	}
	var root struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	if err := json.Unmarshal(r.body, &root); err != nil || root.Version.Number == "" {
		return r, fmt.Errorf("GET / on %s is not an Elasticsearch answer (%s): is this the node's HTTP port?", n.address, excerpt.Clip(string(r.body), 120))
	}
	n.info = info{Product: "Elasticsearch", Version: root.Version.Number}
	if root.Version.Distribution == "opensearch" {
		n.info.Product = "OpenSearch"
	}
	parts := strings.SplitN(root.Version.Number, ".", 3)
	n.info.major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		n.info.minor, _ = strconv.Atoi(parts[1])
	}
	return r, nil
}

// unreachable says whether err means the node could not be reached at all
// (as opposed to an answer we did not like).
func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host")
}

// redactURL drops user:password from a URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}
