package lookup

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

//go:embed page.html
var pageHTML string

// pageTemplate escapes everything it shows (html/template); the page loads
// nothing from elsewhere and runs no script, and its Content-Security-Policy
// forbids both, so a log line that holds markup stays text.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"plural": plural}).Parse(pageHTML))

// plural writes "1 request", "2 requests".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// page is what page.html draws: a timeline of requests, each with its
// backend lines, and backend lines that belong to no request in place.
type page struct {
	Title     string
	Heading   string
	ID        string
	Summary   summary
	Warnings  []string
	Truncated bool
	Entries   []*entry
	Sources   string // where the documents came from, for the footer
}

type summary struct {
	Requests, Errors, Lines int
	From, To                string // UTC, for people
	Span                    string
}

// entry is one row of the timeline: a request, or a backend line outside any.
type entry struct {
	Time, Stamp   string // 15:04:05.000 and the full RFC 3339 time
	Request       bool
	Method, Path  string
	Status        int
	StatusClass   string
	Duration      string
	BarLeft       string // the request's place in the page's time span, as CSS percentages
	BarWidth      string
	Level, Logger string
	Message       string
	Failed        bool
	Error         *failure
	Full          string // the whole message when it has several lines
	RequestURL    string
	SessionURL    string
	Session       string
	Lines         []*entry // backend lines of the request

	start time.Time
	dur   int64
}

type failure struct{ Type, Message, Stack string }

func buildPage(kind, id string, res *result) *page {
	p := &page{ID: id, Warnings: res.warnings, Truncated: res.cut}
	p.Heading = "Session"
	if kind == kindRequest {
		p.Heading = "Request"
	}
	p.Title = p.Heading + " " + id + " · replaylink"
	// Requests first, so that each backend line finds its request whatever
	// the order of their times (the access record is written when the request
	// ends, its lines while it runs).
	byRequest := map[string]*entry{}
	entries := make([]*entry, len(res.docs))
	for i := range res.docs {
		f := &res.docs[i].f
		if f.isAccess() && (f.requestID == "" || byRequest[f.requestID] == nil) {
			entries[i] = newEntry(kind, f)
			if f.requestID != "" {
				byRequest[f.requestID] = entries[i]
			}
		}
	}
	var first, last time.Time
	for i := range res.docs {
		f := &res.docs[i].f
		if !f.time.IsZero() {
			if first.IsZero() || f.time.Before(first) {
				first = f.time
			}
			if end := f.time.Add(time.Duration(f.durationNS)); end.After(last) {
				last = end
			}
		}
		e := entries[i]
		if e == nil {
			e = newEntry(kind, f)
			e.Request = false // a second access record of one request shows as a line
			p.Summary.Lines++
		} else {
			p.Summary.Requests++
		}
		if e.Failed {
			p.Summary.Errors++
		}
		if req := byRequest[f.requestID]; !e.Request && req != nil {
			e.RequestURL = "" // its request's row links already
			req.Lines = append(req.Lines, e)
		} else {
			p.Entries = append(p.Entries, e)
		}
	}
	if !first.IsZero() {
		p.Summary.From = first.Format("2006-01-02 15:04:05.000 MST")
		p.Summary.To = last.Format("2006-01-02 15:04:05.000 MST")
		p.Summary.Span = humanDuration(last.Sub(first).Nanoseconds())
		placeBars(p.Entries, first, last)
	}
	return p
}

func newEntry(kind string, f *fields) *entry {
	e := &entry{
		Request: f.isAccess(), Method: f.method, Path: f.path, Status: f.status,
		Level: f.level, Logger: f.logger, Message: firstLine(stripMarker(f.message)), Failed: f.isError(),
		start: f.time, dur: f.durationNS,
	}
	if e.Level == "" {
		e.Level = "info"
	}
	if !f.time.IsZero() {
		e.Time = f.time.Format("15:04:05.000")
		e.Stamp = f.time.Format(time.RFC3339Nano)
	}
	if f.durationNS > 0 {
		e.Duration = humanDuration(f.durationNS)
	}
	switch {
	case f.status >= 500:
		e.StatusClass = "s5"
	case f.status >= 400:
		e.StatusClass = "s4"
	case f.status >= 300:
		e.StatusClass = "s3"
	case f.status > 0:
		e.StatusClass = "s2"
	}
	if e.Failed && (f.errorType != "" || f.errorMessage != "" || f.stackTrace != "") {
		e.Error = &failure{Type: f.errorType, Message: f.errorMessage, Stack: f.stackTrace}
	}
	if e.Error == nil && strings.ContainsAny(f.message, "\r\n") {
		e.Full = stripMarker(f.message) // a multi-line record shows in full
	}
	if f.requestID != "" && kind != kindRequest {
		e.RequestURL = pageURL(kindRequest, f.requestID)
	}
	if f.session != "" && kind == kindRequest && CheckSessionID(f.session) == nil {
		e.SessionURL, e.Session = pageURL(kindSession, f.session), f.session
	}
	return e
}

// placeBars positions each request in the span of the page, so the rows read
// as a waterfall. A request's time is taken as its start.
func placeBars(entries []*entry, first, last time.Time) {
	span := last.Sub(first)
	if span <= 0 {
		return
	}
	for _, e := range entries {
		if !e.Request || e.start.IsZero() {
			continue
		}
		left := 100 * float64(e.start.Sub(first)) / float64(span)
		width := max(100*float64(e.dur)/float64(span), 0.4)
		width = min(width, 100-left)
		e.BarLeft, e.BarWidth = fmt.Sprintf("%.2f%%", left), fmt.Sprintf("%.2f%%", width)
	}
}

// stripMarker drops the leading [openReplaySession.id=N] that OpenReplay
// needs in message but people do not, on a page that is about that session.
func stripMarker(msg string) string {
	if strings.HasPrefix(msg, "[openReplaySession.id=") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			return strings.TrimLeft(msg[i+1:], " ")
		}
	}
	return msg
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func humanDuration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func writePage(w http.ResponseWriter, log zerolog.Logger, p *page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		log.Error().Err(err).Msg("lookup: rendering the page failed")
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	noStore(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = buf.WriteTo(w)
}
