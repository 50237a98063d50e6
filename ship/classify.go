package ship

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/replaylink/replaylink/internal/jsonscan"
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
		return repeat(dst, n, ItemResult{Verdict: v, Status: httpStatus, Error: err})
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
	// Nearly every answer says no item failed: reading it with
	// encoding/json would cost more than all the rest of a delivery.
	if res, ok := scanIndexed(body, n, dst); ok {
		return res
	}
	return decodeItems(httpStatus, body, n, dst)
}

// decodeItems reads the verdict of each item of an answered bulk request.
func decodeItems(httpStatus int, body []byte, n int, dst []ItemResult) []ItemResult {
	// Each item is keyed by its action: create for Publish, index for
	// Replace (ship.Shipper.Replace).
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
	dst = dst[:0]
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Items) != n {
		why := fmt.Sprintf("bulk response has %d items for %d documents", len(resp.Items), n)
		if err != nil {
			why = "unreadable bulk response: " + err.Error()
		}
		return repeat(dst, n, ItemResult{Verdict: Retry, Status: httpStatus, Error: syntheticError("bad_bulk_response", why)})
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

// repeat appends r n times.
func repeat(dst []ItemResult, n int, r ItemResult) []ItemResult {
	for range n {
		dst = append(dst, r)
	}
	return dst
}

// scanIndexed reads, without encoding/json, a bulk answer that says no
// item failed, shaped as bulkFilterPath leaves it:
//
//	{"errors":false,"items":[{"create":{"status":201}},{"index":{"status":200}}]}
//
// in any key order and with any whitespace. It accepts nothing else: an
// unknown or repeated key, an escape in a key, an error object, a status
// other than 2xx, or a count other than n make it return false, and the
// answer goes to decodeItems. So it cannot be fooled by "errors" inside an
// error's reason, and trusts "errors":false only as far as every item
// agrees; whatever it accepts, decodeItems reads the same way.
func scanIndexed(body []byte, n int, dst []ItemResult) ([]ItemResult, bool) {
	s := scanner{b: body}
	dst = dst[:0]
	var sawErrors, sawItems bool
	if !s.eat('{') {
		return dst, false
	}
	for {
		k, ok := s.key()
		switch {
		case !ok:
			return dst, false
		case string(k) == "errors" && !sawErrors:
			if !s.literal("false") {
				return dst, false // "errors":true: some item failed
			}
			sawErrors = true
		case string(k) == "items" && !sawItems:
			if dst, ok = s.items(n, dst); !ok {
				return dst, false
			}
			sawItems = true
		default:
			return dst, false
		}
		if s.eat(',') {
			continue
		}
		if !s.eat('}') {
			return dst, false
		}
		s.space()
		return dst, sawErrors && sawItems && len(dst) == n && s.i == len(s.b)
	}
}

// scanner walks a JSON text for scanIndexed.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() { s.i = jsonscan.SkipSpace(s.b, s.i) }

// eat consumes c, after any whitespace, when it comes next.
func (s *scanner) eat(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(word string) bool {
	s.space()
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

// key reads an object key and its colon. Keys with escapes are refused:
// none of the keys scanIndexed accepts has one.
func (s *scanner) key() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	for start := s.i; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			k := s.b[start:s.i]
			s.i++
			return k, s.eat(':')
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// items reads the items array, appending one Indexed result per item, and
// refuses more than n.
func (s *scanner) items(n int, dst []ItemResult) ([]ItemResult, bool) {
	if !s.eat('[') {
		return dst, false
	}
	if s.eat(']') {
		return dst, true
	}
	for len(dst) < n {
		status, ok := s.item()
		if !ok {
			return dst, false
		}
		dst = append(dst, ItemResult{Verdict: Indexed, Status: status})
		if !s.eat(',') {
			return dst, s.eat(']')
		}
	}
	return dst, false
}

// item reads {"create":{"status":2xx}} or {"index":{"status":2xx}}.
func (s *scanner) item() (int, bool) {
	if !s.eat('{') {
		return 0, false
	}
	if k, ok := s.key(); !ok || (string(k) != "create" && string(k) != "index") {
		return 0, false
	}
	if !s.eat('{') {
		return 0, false
	}
	if k, ok := s.key(); !ok || string(k) != "status" {
		return 0, false
	}
	s.space()
	d := s.b[s.i:]
	if len(d) < 3 || d[0] != '2' || !isDigit(d[1]) || !isDigit(d[2]) {
		return 0, false
	}
	s.i += 3
	// A fourth digit, a fraction or an exponent would stop at the braces:
	// the one that closes the action's object, then the item's.
	closed := s.eat('}')
	closed = closed && s.eat('}')
	return 200 + int(d[1]-'0')*10 + int(d[2]-'0'), closed
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// itemVerdict classifies the status of one item of an answered bulk request.
func itemVerdict(status int) Verdict {
	switch {
	case status >= 200 && status < 300:
		return Indexed
	case status == http.StatusConflict:
		return Duplicate
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout,
		// Missing privileges on the index (an API key without index),
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
