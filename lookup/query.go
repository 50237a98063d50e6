package lookup

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/replaylink/replaylink/memstore"
)

// MaxLimit is the most documents one lookup returns: Elasticsearch's
// default index.max_result_window, the most one search may return.
const MaxLimit = 10000

// queryLimit is the admin API's limit when a request names none
// (?limit=); replaylink lookup always names its --limit.
const queryLimit = 1000

// query narrows the documents of a lookup (?level=&from=&to=&limit=).
type query struct {
	MinLevel string    // "" for all; else documents at this level or more severe
	From, To time.Time // inclusive bounds on utc_time; zero means open
	Limit    int       // the earliest Limit documents are returned
}

// parseQuery reads a lookup's query parameters and names the first bad one.
func parseQuery(v url.Values) (query, error) {
	q := query{Limit: queryLimit}
	if s := v.Get("level"); s != "" {
		q.MinLevel = normalLevel(s)
		if q.MinLevel == "" {
			return q, fmt.Errorf("level=%q: expected one of debug, info, warning, error (the least severe level to show)", s)
		}
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(b.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("%s=%q: expected an RFC 3339 time like 2025-01-31T14:05:00Z", b.name, s)
		}
		*b.dst = t.UTC()
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, fmt.Errorf("to=%s is before from=%s", v.Get("to"), v.Get("from"))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit=%q: expected a whole number from 1 to %d", s, MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// levels lists the levels a query admits, for Elasticsearch's terms filter;
// nil admits all.
func (q query) levels() []string {
	if q.MinLevel == "" {
		return nil
	}
	var out []string
	for _, l := range []string{"debug", "info", "warning", "error"} {
		if levelRank(l) >= levelRank(q.MinLevel) {
			out = append(out, l)
		}
	}
	return out
}

func (q query) match(f *fields) bool {
	if q.MinLevel != "" && levelRank(f.level) < levelRank(q.MinLevel) {
		return false
	}
	if !q.From.IsZero() && f.time.Before(q.From) {
		return false
	}
	if !q.To.IsZero() && f.time.After(q.To) {
		return false
	}
	return true
}

// merge joins shipped documents with recent ones, which may overlap: a recent
// document is left out when a shipped one has its _id. The result is filtered
// by q, sorted by time (documents without one last) and cut to q.Limit; cut
// reports whether anything was cut.
func merge(shipped []logDoc, recent []memstore.Document, q query) (docs []logDoc, cut bool) {
	seen := make(map[string]bool, len(shipped)+len(recent))
	docs = make([]logDoc, 0, len(shipped)+len(recent))
	for _, d := range shipped {
		seen[d.ID] = true
		docs = append(docs, d)
	}
	for _, r := range recent {
		if seen[r.ID] {
			continue
		}
		d, ok := parseDoc(r.ID, r.Source)
		if !ok || !q.match(&d.f) {
			continue
		}
		seen[r.ID] = true
		docs = append(docs, d)
	}
	slices.SortStableFunc(docs, func(a, b logDoc) int {
		switch {
		case a.f.time.Equal(b.f.time):
			return strings.Compare(a.ID, b.ID)
		case a.f.time.IsZero():
			return 1
		case b.f.time.IsZero():
			return -1
		}
		return a.f.time.Compare(b.f.time)
	})
	if len(docs) > q.Limit {
		return docs[:q.Limit], true
	}
	return docs, false
}
