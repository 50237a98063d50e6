package lookup

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of a lookup. MaxLimit stays at Elasticsearch's default
// index.max_result_window, the most one search may return.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// Query narrows the documents of a lookup (?level=&from=&to=&limit=).
type Query struct {
	MinLevel string    // "" for all; else documents at this level or more severe
	From, To time.Time // inclusive bounds on utc_time; zero means open
	Limit    int       // the earliest Limit documents are returned
}

// ParseQuery reads a lookup's query parameters and names the first bad one.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Limit: DefaultLimit}
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
func (q Query) levels() []string {
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

func (q Query) match(f *fields) bool {
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
// document is left out when a shipped one has its _id or, lacking an _id, its
// exact content. The result is filtered by q, sorted by time (documents
// without one last) and cut to q.Limit; cut reports whether anything was cut.
func merge(shipped []Doc, recent [][]byte, q Query) (docs []Doc, cut bool) {
	ids := make(map[string]bool, len(shipped)+len(recent))
	for _, d := range shipped {
		ids[d.ID] = true
	}
	var contents map[[32]byte]bool // built only if a recent document has no _id
	docs = append(docs, shipped...)
	for _, src := range recent {
		d, ok := parseDoc("", src)
		if !ok || !q.match(&d.f) {
			continue
		}
		if d.ID != "" {
			if ids[d.ID] {
				continue
			}
			ids[d.ID] = true
		} else {
			if contents == nil {
				contents = make(map[[32]byte]bool, len(docs))
				for _, s := range docs {
					contents[contentKey(s.Source)] = true
				}
			}
			k := contentKey(src)
			if contents[k] {
				continue
			}
			contents[k] = true
		}
		docs = append(docs, d)
	}
	slices.SortStableFunc(docs, func(a, b Doc) int {
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
