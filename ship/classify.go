package ship

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Verdict is what happens to one document after a bulk attempt.
type Verdict uint8

const (
	// Indexed: 2xx, the document is in.
	Indexed Verdict = iota + 1
	// Duplicate: 409 on a create, the document was indexed by an earlier
	// attempt (a retry, or a replay after a restart), or a replacement sent
	// with the index action got there first. Counts as success. (The index
	// action itself overwrites, so it never gets a 409.)
	Duplicate
	// Backoff: the cluster pushes back or is unreachable, or credentials
	// are refused (429, request-level 5xx, 401, 403...). Retried after a
	// backoff for as long as it takes: an outage or a configuration fix
	// must not cost documents; the spool cap bounds what waits.
	Backoff
	// Retry: this document failed with an item-level 5xx while the request
	// itself was answered. Retried after a backoff, and dead-lettered when it
	// keeps failing for Options.ItemRetryTime, so it cannot block the queue.
	Retry
	// Split: 413, the request was too large; its halves are sent apart.
	Split
	// Reject: any other 4xx (mapping or parse error): retrying cannot help;
	// the document goes to the dead-letter file with the error.
	Reject
)

var verdictNames = [...]string{"", "indexed", "duplicate", "backoff", "retry", "split", "reject"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", v)
}

// ItemResult is the verdict on one document, with the status and error
// Elasticsearch gave (Error is the raw JSON error object, or nil).
type ItemResult struct {
	Verdict Verdict
	Status  int
	Error   json.RawMessage
}

// bulkFilterPath keeps bulk responses small: per item only its status, and
// the error when there is one. Keeping status keeps every item in the
// array, so items stay aligned with the documents sent.
var bulkFilterPath = []string{"errors", "items.*.status", "items.*.error"}

// ClassifyBulk decides the fate of each of the n documents of a bulk request
// that got httpStatus and body (filtered by bulkFilterPath). It is pure: no
// I/O, no clock, no state; dst is reused when large enough.
func ClassifyBulk(httpStatus int, body []byte, n int, dst []ItemResult) []ItemResult {
	dst = dst[:0]
	all := func(v Verdict, err json.RawMessage) []ItemResult {
		for range n {
			dst = append(dst, ItemResult{Verdict: v, Status: httpStatus, Error: err})
		}
		return dst
	}
	switch {
	case httpStatus >= 200 && httpStatus < 300:
	case httpStatus == http.StatusRequestEntityTooLarge:
		return all(Split, nil)
	case httpStatus == http.StatusTooManyRequests || httpStatus >= 500,
		// Credentials, a proxy asking for them, a wrong path prefix, a
		// timeout: all fixed outside replaylink, after which the same
		// documents go through.
		httpStatus == http.StatusUnauthorized, httpStatus == http.StatusForbidden,
		httpStatus == http.StatusNotFound, httpStatus == http.StatusProxyAuthRequired,
		httpStatus == http.StatusRequestTimeout:
		return all(Backoff, requestError(body))
	case httpStatus >= 400 && n > 1:
		// The whole request was refused (e.g. a malformed line): halve it
		// until the culprit stands alone.
		return all(Split, nil)
	case httpStatus >= 400:
		return all(Reject, requestError(body))
	default: // 1xx, 3xx: nothing sane to read
		return all(Backoff, syntheticError("unexpected_status", fmt.Sprintf("bulk request answered %d", httpStatus)))
	}

	// Each item is keyed by its action: create for Publish, index for
	// Replace (ship.Pipeline.Replace).
	type item struct {
		Status int             `json:"status"`
		Error  json.RawMessage `json:"error"`
	}
	var resp struct {
		Items []struct {
			Create item `json:"create"`
			Index  item `json:"index"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Items) != n {
		why := fmt.Sprintf("bulk response has %d items for %d documents", len(resp.Items), n)
		if err != nil {
			why = "unreadable bulk response: " + err.Error()
		}
		return all(Retry, syntheticError("bad_bulk_response", why))
	}
	for _, it := range resp.Items {
		r := it.Create
		if r.Status == 0 {
			r = it.Index
		}
		dst = append(dst, ItemResult{Verdict: itemVerdict(r.Status), Status: r.Status, Error: r.Error})
	}
	return dst
}

// itemVerdict classifies the status of one item of an answered bulk request.
func itemVerdict(status int) Verdict {
	switch {
	case status >= 200 && status < 300:
		return Indexed
	case status == http.StatusConflict:
		return Duplicate
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout,
		// Missing privileges on the index (an API key without create_doc),
		// or no index with auto-creation off: fixed outside replaylink.
		status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		return Backoff
	case status >= 400 && status < 500:
		return Reject
	default: // 5xx, or a status Elasticsearch never sends
		return Retry
	}
}

// requestError returns the "error" object of a request-level error body, or
// a short excerpt of a body that is not Elasticsearch's (an HTML page from
// a proxy, say).
func requestError(body []byte) json.RawMessage {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		return e.Error
	}
	excerpt := body
	if len(excerpt) > 256 {
		excerpt = excerpt[:256]
	}
	return syntheticError("http_error", string(excerpt))
}

// syntheticError builds an error object shaped like Elasticsearch's, for
// failures it did not describe itself.
func syntheticError(typ, reason string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}{typ, reason})
	return b
}
