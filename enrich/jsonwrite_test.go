package enrich

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendStringEscapes(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`plain`, `"plain"`},
		{`say "hi" \ bye`, `"say \"hi\" \\ bye"`},
		{"a\nb\rc\td", `"a\nb\rc\td"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f\u007f"`},
		{"bad \xff\xfe utf8", `"bad \ufffd\ufffd utf8"`},
		{"cut \xe2\x82", `"cut \ufffd\ufffd"`},
		{"ok é 中 😀", `"ok é 中 😀"`},
		{"line\u2028sep\u2029para", `"line\u2028sep\u2029para"`},
		{"c1 \u0085 \u009b", `"c1 \u0085 \u009b"`},
		{"\x1b[31mred", `"\u001b[31mred"`}, // kept (escaped) outside message-like text
	} {
		got := string(appendString(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendString(%q) = %s is not a JSON string: %v", tc.in, got, err)
		}
		if s := string(appendStr(nil, tc.in)); s != got {
			t.Errorf("appendStr(%q) = %s, appendString gives %s", tc.in, s, got)
		}
	}
}

func TestAppendTextStripsEscapes(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"\x1b[1m\x1b[31mERROR\x1b[0m boom", `"ERROR boom"`},
		{"title\x1b]0;pwned\x07 after", `"title after"`},
		{"osc\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end", `"osclink end"`},
		{"charset\x1b(B set", `"charset set"`},
		{"save\x1b7 restore\x1b8", `"save restore"`},
		{"c1 csi \u009b31mred\u0085", `"c1 csi red"`},
		{"dangling \x1b", `"dangling "`},
		{"dangling csi \x1b[12", `"dangling csi "`},
		{"bell \a stays escaped", `"bell \u0007 stays escaped"`},
	} {
		got := string(appendText(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("appendText(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestDefuseMarkers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[openReplaySession.id=12] x", "[openReplaySession_id=12] x"},
		{"OPENREPLAYSESSION.ID=1 and openreplaysession.Id", "OPENREPLAYSESSION_ID=1 and openreplaysession_Id"},
		{"openReplaySession.idle", "openReplaySession_idle"},
		{"openReplaySession.x and Session.id", "openReplaySession.x and Session.id"},
		{".id", ".id"},
		{"openReplaySessİon.İd=7", "openReplaySessİon_İd=7"}, // Lucene lowercases İ to i
		{"xopenReplaySession.id", "xopenReplaySession_id"},   // a longer word is harmless either way
	} {
		b := []byte(tc.in)
		defuseMarkers(b)
		if string(b) != tc.want {
			t.Errorf("defuseMarkers(%q) = %q, want %q", tc.in, b, tc.want)
		}
	}
	// ANSI codes cannot hide the phrase: stripping happens before defusing.
	var d document
	d.time, d.message = t0, []byte("openReplay\x1b[0mSession.id=5")
	out := appendDocument(nil, &d)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["message"] != "openReplaySession_id=5" {
		t.Errorf("message = %q", m["message"])
	}
}

func TestAppendTime(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	got := string(appendTime(nil, time.Date(2024, 5, 1, 12, 0, 1, 987654321, loc)))
	if got != "2024-05-01T10:00:01.987Z" {
		t.Errorf("appendTime = %s", got)
	}
}

// FuzzAppendText checks that any bytes become one valid JSON string holding
// valid UTF-8 without escape sequences or a marker phrase.
func FuzzAppendText(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[31mred", "\xff", "openReplaySession.id=1", "\u009b1m", "\x1b]0;x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d document
		d.time, d.message = t0, in
		out := appendDocument(nil, &d)
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", out, err)
		}
		msg, _ := m["message"].(string)
		if !utf8.ValidString(msg) {
			t.Fatalf("message not UTF-8: %q", msg)
		}
		for _, r := range msg {
			if r == 0x1b || r >= 0x80 && r <= 0x9f {
				t.Fatalf("message keeps %U: %q", r, msg)
			}
		}
		if containsFold(msg, "openreplaysession.id") {
			t.Fatalf("marker phrase survived: %q", msg)
		}
	})
}

func containsFold(s, sub string) bool { return strings.Contains(strings.ToLower(s), sub) }
