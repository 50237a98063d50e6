package lookup

import (
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
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/replaylink/replaylink/internal/excerpt"
)

// Exit codes of RunCLI.
const (
	CLIOK     = 0
	CLIFailed = 1 // the lookup could not be made; the message says why and what to do
	CLIUsage  = 2 // bad session id or option
)

// CLIOptions configure `replaylink lookup SESSION_ID`.
type CLIOptions struct {
	Session string
	JSON    bool   // print the answer as JSON (the admin API's shape) instead of a table
	Level   string // least severe level to show; "" for all
	Limit   int    // most documents to print, 1 to MaxLimit (--limit)

	// ES, when set (--es-url), is searched directly; otherwise the running
	// replaylink's admin API at AdminURL answers.
	ES    Transport
	Index string // with ES; default "logs"

	AdminURL   string // default http://127.0.0.1:9090; see AdminBaseURL
	AdminToken string // sent as a bearer token, never printed
	Timeout    time.Duration
}

// RunCLI looks up one session's logs and prints them to stdout as a table
// (time, level, status, method and path, first line of the message) or as
// JSON; problems go to stderr. It returns the process exit code.
func RunCLI(ctx context.Context, stdout, stderr io.Writer, o CLIOptions) int {
	if err := CheckSessionID(o.Session); err != nil {
		fmt.Fprintf(stderr, "replaylink lookup: %v\nusage: replaylink lookup SESSION_ID [--json] [--es-url URL]\n", err)
		return CLIUsage
	}
	v := url.Values{}
	if o.Level != "" {
		v.Set("level", o.Level)
	}
	v.Set("limit", strconv.Itoa(o.Limit))
	q, err := parseQuery(v)
	if err != nil {
		fmt.Fprintf(stderr, "replaylink lookup: %v\n", err)
		return CLIUsage
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	var a answer
	if o.ES != nil {
		a, err = lookupES(ctx, o, q)
	} else {
		a, err = lookupAdmin(ctx, o, v)
	}
	if err != nil {
		fmt.Fprintf(stderr, "replaylink lookup: %v\n", err)
		return CLIFailed
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(a); err != nil {
			fmt.Fprintf(stderr, "replaylink lookup: %v\n", err)
			return CLIFailed
		}
		return CLIOK
	}
	for _, w := range a.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	printTable(stdout, a)
	return CLIOK
}

func lookupES(ctx context.Context, o CLIOptions, q query) (answer, error) {
	idx := o.Index
	if idx == "" {
		idx = "logs"
	}
	arch := &archive{es: o.ES, index: idx}
	docs, more, err := arch.find(ctx, fieldSession, o.Session, q)
	if err != nil {
		return answer{}, fmt.Errorf("searching Elasticsearch: %v; check the node with 'replaylink check'", err)
	}
	res := result{docs: docs, cut: more}
	a := res.answer()
	a.Session = o.Session
	return a, nil
}

func lookupAdmin(ctx context.Context, o CLIOptions, v url.Values) (answer, error) {
	base := strings.TrimRight(o.AdminURL, "/")
	if base == "" {
		base = "http://127.0.0.1:9090"
	}
	u := base + "/sessions/" + o.Session + "/logs"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, fmt.Errorf("admin URL %q: %v", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if o.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.AdminToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, once
		}
		return answer{}, fmt.Errorf("cannot reach replaylink's admin listener at %s: %v; is replaylink running with --admin %s? (or give --es-url to search Elasticsearch directly)", base, err, strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://"))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return answer{}, fmt.Errorf("reading the admin listener's answer: %v", err)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return answer{}, errors.New("the admin listener wants a token: give --admin-token (REPLAYLINK_ADMIN_TOKEN) with replaylink's token")
	case res.StatusCode != http.StatusOK:
		return answer{}, fmt.Errorf("the admin listener answered %d: %s", res.StatusCode, strings.TrimSpace(excerpt.Clip(string(body), 500)))
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return answer{}, fmt.Errorf("the admin listener's answer is not lookup JSON (%v): is %s replaylink's admin listener?", err, base)
	}
	return a, nil
}

// printTable writes one row per document. Everything printed is cleaned of
// control characters, so a log line cannot drive the terminal.
func printTable(w io.Writer, a answer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tLEVEL\tSTATUS\tREQUEST\tMESSAGE")
	for _, raw := range a.Logs {
		d, ok := parseDoc("", raw)
		if !ok {
			continue
		}
		f := &d.f
		ts, status, req := "-", "", ""
		if !f.time.IsZero() {
			ts = f.time.Format("2006-01-02 15:04:05.000")
		}
		if f.status != 0 {
			status = strconv.Itoa(f.status)
		}
		if f.method != "" || f.path != "" {
			req = strings.TrimSpace(f.method + " " + f.path)
		}
		level := f.level
		if level == "" {
			level = "info"
		}
		msg := firstLine(stripMarker(f.message))
		if msg == "" && f.errorType != "" {
			msg = f.errorType + ": " + f.errorMessage
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ts, level, terminalSafe(status, 6), terminalSafe(req, 80), terminalSafe(msg, 200))
	}
	tw.Flush()
	more := ""
	if a.Truncated {
		more = fmt.Sprintf(" (the earliest %d; more matched: raise --limit, up to %d)", a.Count, MaxLimit)
	}
	fmt.Fprintf(w, "%s for session %s%s\n", plural(a.Count, "document"), a.Session, more)
}

func terminalSafe(s string, maxRunes int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxRunes {
			b.WriteString("…")
			break
		}
		if r == '\t' {
			r = ' '
		} else if unicode.IsControl(r) || r == unicode.ReplacementChar {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// AdminBaseURL is the URL at which this host reaches an admin listener on
// listen (--admin): an unspecified host becomes 127.0.0.1.
func AdminBaseURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://127.0.0.1:9090"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
