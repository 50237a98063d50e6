// Package lookup finds the logs of one OpenReplay session or one request,
// for people (an HTML page per session) and for machines (JSON), from
// Elasticsearch and from the documents replaylink made recently but has not
// shipped yet (the memory store, package memstore). It also holds the
// `replaylink lookup` command. Who may look up is the admin listener's access
// policy (package admin), not lookup's.
//
// Every document in an answer carries its Elasticsearch _id as a top-level
// "_id" key (a key Elasticsearch never allows inside a document, so it
// cannot clash). Recent documents have their _id from the moment they are
// made, so a document both shipped and recent is shown once.
package lookup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/internal/excerpt"
	"github.com/replaylink/replaylink/memstore"
)

// MemoryStore is what lookup reads of the memory store (package memstore):
// documents replaylink made lately, shipped or not, oldest first. It is the
// only source in the embedded default.
type MemoryStore interface {
	Session(id string) []memstore.Document
	Request(requestID string) []memstore.Document
}

var _ MemoryStore = (*memstore.Store)(nil)

// Options configure a Handler. MemoryStore, ES or both may be nil
// (--memory-store 0, no --es-url): each answer then says what it could not
// search.
type Options struct {
	MemoryStore MemoryStore
	ES          Transport // nil without --es-url
	Index       string    // where shipped documents are; default "logs"
	Logger      zerolog.Logger
	// Timeout bounds one Elasticsearch search; default 10s.
	Timeout time.Duration
}

// Handler serves, on the admin listener only:
//
//	GET /sessions/{id}/logs   JSON {"session","count","truncated","logs"[,"warnings"]}
//	GET /sessions/{id}        HTML timeline (JSON as above when asked, see wantsJSON)
//	GET /requests/{id}        HTML page of one request (JSON when asked)
//
// Mount it for the prefixes "/sessions/" and "/requests/", behind
// admin.Policy.Protect.
type Handler struct {
	memory  MemoryStore
	archive *archive
	log     zerolog.Logger
	timeout time.Duration
	mux     *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

var (
	esFailures = metrics.NewCounter(`replaylink_lookup_es_errors_total`)
	badLookups = metrics.NewCounter(`replaylink_lookup_rejected_total{reason="bad_request"}`)
)

// NewHandler builds the lookup endpoints.
func NewHandler(o Options) *Handler {
	h := &Handler{memory: o.MemoryStore, log: o.Logger, timeout: o.Timeout, mux: http.NewServeMux()}
	if o.ES != nil {
		idx := o.Index
		if idx == "" {
			idx = "logs"
		}
		h.archive = &archive{es: o.ES, index: idx}
	}
	if h.timeout <= 0 {
		h.timeout = 10 * time.Second
	}
	h.mux.HandleFunc("GET /sessions/{id}/logs", func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, kindSession, true) })
	h.mux.HandleFunc("GET /sessions/{id}", func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, kindSession, false) })
	h.mux.HandleFunc("GET /requests/{id}", func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, kindRequest, false) })
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// result is a lookup's answer before it is rendered.
type result struct {
	docs     []logDoc
	cut      bool
	warnings []string
}

// answer is the JSON form of a result.
type answer struct {
	Session   string            `json:"session,omitempty"`
	Request   string            `json:"request,omitempty"`
	Count     int               `json:"count"`
	Truncated bool              `json:"truncated"`
	Logs      []json.RawMessage `json:"logs"`
	Warnings  []string          `json:"warnings,omitempty"`
}

func (res *result) answer() answer {
	a := answer{Count: len(res.docs), Truncated: res.cut, Logs: make([]json.RawMessage, len(res.docs)), Warnings: res.warnings}
	for i, d := range res.docs {
		a.Logs[i] = d.withID()
	}
	return a
}

// find gathers what Elasticsearch and the memory store hold for field=value.
// An unreachable Elasticsearch does not fail the lookup: the recent documents
// are still worth seeing, and the answer says what is missing.
func (h *Handler) find(ctx context.Context, field, value string, q query) *result {
	var shipped []logDoc
	var res result
	if h.archive != nil {
		ctx, cancel := context.WithTimeout(ctx, h.timeout)
		defer cancel()
		docs, more, err := h.archive.find(ctx, field, value, q)
		if err != nil {
			esFailures.Inc()
			h.log.Warn().Err(err).Msg("lookup: elasticsearch search failed; answering from recent documents only")
			res.warnings = append(res.warnings, "Elasticsearch could not be searched ("+err.Error()+"); showing only documents replaylink still holds in memory")
		}
		shipped, res.cut = docs, more
	}
	var recent []memstore.Document
	if h.memory == nil {
		res.warnings = append(res.warnings, h.noMemoryStoreWarning())
	} else {
		if field == fieldSession {
			recent = h.memory.Session(value)
		} else {
			recent = h.memory.Request(value)
		}
	}
	docs, cut := merge(shipped, recent, q)
	res.docs, res.cut = docs, res.cut || cut
	return &res
}

// noMemoryStoreWarning says what a lookup misses when replaylink keeps no
// memory store (--memory-store 0), and how to change it.
func (h *Handler) noMemoryStoreWarning() string {
	if h.archive == nil {
		return "replaylink keeps no recent documents in memory (--memory-store 0) and searches no Elasticsearch (no --es-url), so there is nothing to look up in: start it with --memory-store 50000 (the default) or with --es-url"
	}
	return "replaylink keeps no recent documents in memory (--memory-store 0): documents not yet in Elasticsearch are not shown"
}

// sources names where a lookup searched, for the page.
func (h *Handler) sources() string {
	switch {
	case h.archive != nil && h.memory != nil:
		return "Elasticsearch and from replaylink's memory, merged by _id"
	case h.archive != nil:
		return "Elasticsearch only (--memory-store 0)"
	case h.memory != nil:
		return "replaylink's memory"
	}
	return "nowhere (--memory-store 0 and no --es-url)"
}

// The two kinds of lookup: their path segment, and the keyword field that
// finds their documents.
const (
	kindSession  = "sessions"
	kindRequest  = "requests"
	fieldSession = "openReplaySession.id"
	fieldRequest = "http.request.id"
)

// serve answers one lookup of kind (kindSession or kindRequest) for the
// {id} of the path: JSON when alwaysJSON or asked for, the page otherwise.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, kind string, alwaysJSON bool) {
	id := r.PathValue("id")
	check, field := CheckSessionID, fieldSession
	if kind == kindRequest {
		check, field = checkRequestID, fieldRequest
	}
	if err := check(id); err != nil {
		badRequest(w, err.Error())
		return
	}
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	res := h.find(r.Context(), field, id, q)
	if !alwaysJSON && !wantsJSON(r) {
		p := buildPage(kind, id, res)
		p.Sources = h.sources()
		writePage(w, h.log, p)
		return
	}
	a := res.answer()
	if kind == kindSession {
		a.Session = id
	} else {
		a.Request = id
	}
	writeJSON(w, a)
}

// CheckSessionID accepts an OpenReplay session id: 1 to 20 decimal digits.
func CheckSessionID(id string) error {
	ok := id != "" && len(id) <= 20
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] >= '0' && id[i] <= '9'
	}
	if !ok {
		return fmt.Errorf("invalid session id %q: an OpenReplay session id is 1 to 20 decimal digits, as in /sessions/7391048572913 (copy it from the replay's URL)", excerpt.Clip(id, 40))
	}
	return nil
}

// checkRequestID accepts the request ids replaylink writes and the common
// X-Request-Id forms (UUIDs, hex, base64url): printable ASCII, no spaces.
func checkRequestID(id string) error {
	ok := id != "" && len(id) <= 200
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] > ' ' && id[i] < 0x7f
	}
	if !ok {
		return fmt.Errorf("invalid request id %q: expected up to 200 printable ASCII characters without spaces, as in the http.request.id field", excerpt.Clip(id, 40))
	}
	return nil
}

// wantsJSON chooses JSON over HTML for the page endpoints: ?format=json
// (?format=html forces HTML), else an Accept header that names
// application/json and not text/html (curl -H 'Accept: application/json').
// Browsers send text/html, so they get the page.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	acc := r.Header.Get("Accept")
	return strings.Contains(acc, "application/json") && !strings.Contains(acc, "text/html")
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // documents are valid JSON by construction; say so if not
		http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	noStore(w.Header())
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func badRequest(w http.ResponseWriter, msg string) {
	badLookups.Inc()
	noStore(w.Header())
	http.Error(w, msg, http.StatusBadRequest) // text/plain and nosniff, so the echoed id is inert
}

func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// pageURL links to another lookup page relative to the current one, so the
// pages work under any mount prefix: /sessions/1 -> ../requests/abc.
func pageURL(kind, id string) string {
	return "../" + kind + "/" + url.PathEscape(id)
}
