package enrich

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// maxAccessDocument is the bound docs/document-format.md promises for an
// access document without a folded-in backend record.
const maxAccessDocument = 32 << 10

// TestAccessDocumentIsBounded: whatever a client sends within the proxy's
// header limit, and whatever a backend answers in a 5xx body, the access
// document stays under maxAccessDocument, names every field it cut, keeps
// OpenReplay's contract (the marker first in message) and keeps what fits.
func TestAccessDocumentIsBounded(t *testing.T) {
	type fill struct {
		name                             string
		method, path, query, agent, body string
	}
	huge := func(s string) string { return strings.Repeat(s, (64<<10)/len(s)) } // the whole header limit
	for _, f := range []fill{
		// The request: a 30 KB path and a 30 KB User-Agent.
		{"plain", "GET", "/" + strings.Repeat("a", 30<<10), "", strings.Repeat("b", 30<<10), ""},
		// Bytes that escape to six: invalid UTF-8, control characters.
		{"escaped", huge("\x01"), "/" + huge("\xff"), huge("\x7f"), huge("\x02"), huge("\xff")},
		{"quotes", huge(`"`), huge(`\`), huge(`"`), huge("\u0085"), huge("\u2028")},
		{"ansi", "GET", "/" + huge("\x1b[31m\xff"), huge("%22"), huge("\t"), huge("\x1b[1m\x01")},
	} {
		t.Run(f.name, func(t *testing.T) {
			rec := &recorder{}
			opts := testOptions()
			opts.ServiceName = "shop"
			opts.Mark = MarkAll
			a := newTestAssembler(rec, opts)
			ev := accessEvent(1, 7394857349857, t0, 12*time.Millisecond, f.method, f.path, 502)
			ev.Query = append(ev.Query, f.query...)
			ev.UserAgent = append(ev.UserAgent, f.agent...)
			ev.ErrorBody = append(ev.ErrorBody, f.body...)
			ev.ProxyError = append(ev.ProxyError, "upstream refused connection"...)
			ev.RequestID = append(ev.RequestID, strings.Repeat("r", 128)...)
			counted := func() (n uint64) {
				for _, c := range truncatedFieldsTotal {
					n += c.Get()
				}
				return n
			}
			before := counted()
			a.addEvent(ev, t0)
			a.flushAll()
			if len(rec.docs) != 1 {
				t.Fatalf("%d documents, want 1", len(rec.docs))
			}
			src := rec.docs[0]
			if len(src) > maxAccessDocument {
				t.Errorf("access document is %d bytes, over %d", len(src), maxAccessDocument)
			}
			m := checkContract(t, src)
			msg := m["message"].(string)
			if !strings.HasPrefix(msg, "[openReplaySession.id=7394857349857] ") || !strings.Contains(msg, "-> 502 (12.0 ms)") {
				t.Errorf("message lost its marker or its status: %.200q", msg)
			}
			var want []string
			for _, c := range []struct {
				field, sent string
				stripped    bool
			}{
				{"message", f.path, true}, {"http.request.method", f.method, false}, {"url.path", f.path, false},
				{"url.query", f.query, false}, {"user_agent.original", f.agent, false}, {"http.response.body.content", f.body, true},
			} {
				if len(c.sent) > 64 {
					want = append(want, c.field)
				}
				if c.field == "message" {
					continue
				}
				got, _ := field(m, c.field).(string)
				if got == "" && c.sent != "" {
					t.Errorf("%s kept nothing of %d bytes", c.field, len(c.sent))
				}
				if !c.stripped && utf8.ValidString(c.sent) && !strings.HasPrefix(c.sent, got) {
					t.Errorf("%s is not a prefix of what was sent: %.80q", c.field, got)
				}
			}
			if field(m, "replaylink.truncated") != true {
				t.Errorf("replaylink.truncated is %v, want true", field(m, "replaylink.truncated"))
			}
			var got []string
			names, _ := field(m, "replaylink.truncated_fields").([]any)
			for _, x := range names {
				got = append(got, x.(string))
			}
			if !slices.Equal(got, want) {
				t.Errorf("replaylink.truncated_fields %q, want %q", got, want)
			}
			if n := counted() - before; n != uint64(len(want)) {
				t.Errorf("replaylink_enrich_truncated_fields_total counted %d cuts, want %d", n, len(want))
			}
			t.Logf("%d bytes", len(src))
		})
	}
}

// An ordinary request is not marked: the caps are far above real values.
func TestAccessDocumentNotCut(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.ServiceName = "shop"
	a := newTestAssembler(rec, opts)
	ev := benchEvent()
	ev.Status = 500
	body := bytes.Repeat([]byte(`{"error":"db \"down\""}`), (8<<10)/22) // --error-body-bytes' default, many quotes
	ev.ErrorBody = append(ev.ErrorBody, body...)
	a.addEvent(ev, t0) // takes ev
	a.flushAll()
	m := checkContract(t, rec.docs[0])
	if rl := field(m, "replaylink").(map[string]any); rl["truncated"] != nil || rl["truncated_fields"] != nil {
		t.Errorf("an ordinary request was marked truncated: %v", rl)
	}
	if got, _ := field(m, "http.response.body.content").(string); got != string(body) {
		t.Errorf("body kept %d of %d bytes", len(got), len(body))
	}
}

func TestEscapedPrefix(t *testing.T) {
	for _, c := range []struct {
		in    string
		max   int
		strip bool
		want  string
		cut   bool
	}{
		{"abc", 3, false, "abc", false},
		{"abcd", 3, false, "abc", true},
		{`a"b`, 2, false, "a", true},
		{`a"b`, 3, false, `a"`, true},
		{"\xffx", 6, false, "\xff", true},
		{"\xffx", 5, false, "", true},
		{"é", 1, false, "", true}, // never half a character
		{"\x1b[31mab", 1, true, "\x1b[31ma", true},
		{"\x1b[31mab", 1, false, "", true},
		{"\u2028", 5, false, "", true},
		{"\u2028", 6, false, "\u2028", false},
	} {
		got, cut := escapedPrefix([]byte(c.in), c.max, c.strip)
		if string(got) != c.want || cut != c.cut {
			t.Errorf("escapedPrefix(%q, %d, %v) = %q, %v; want %q, %v", c.in, c.max, c.strip, got, cut, c.want, c.cut)
		}
	}
}

// FuzzEscapedPrefix holds escapedPrefix to appendEscaped: the prefix's
// escaped form fits, it is cut only when the whole would not fit, and
// only as much as one character's escape.
func FuzzEscapedPrefix(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[31mred\x1b[0m", "\xff\xfe", `"\`, "\u009b1mx", "\x1b]0;title\x07", "é\u2028\t\n"} {
		f.Add([]byte(s), uint8(4), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, max uint8, strip bool) {
		p, cut := escapedPrefix(in, int(max), strip)
		if !bytes.HasPrefix(in, p) || cut != (len(p) < len(in)) {
			t.Fatalf("escapedPrefix(%q, %d) = %q, %v: not a prefix, or cut misreported", in, max, p, cut)
		}
		esc := len(appendEscaped(nil, p, strip))
		if esc > int(max) {
			t.Fatalf("prefix %q escapes to %d bytes, over %d", p, esc, max)
		}
		if cut {
			if whole := len(appendEscaped(nil, in, strip)); whole <= int(max) {
				t.Fatalf("%q cut though its %d escaped bytes fit in %d", in, whole, max)
			}
			if esc+6 <= int(max) {
				t.Fatalf("%q cut to %q, %d escaped bytes: a whole character more would fit in %d", in, p, esc, max)
			}
		}
	})
}
