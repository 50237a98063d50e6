package hooks

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	testNonce = Nonce([]byte("0123456789abcdef"))
	otherNnc  = Nonce([]byte("fedcba9876543210"))
	spanA     = Mark{Span: [8]byte{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31}}
	spanB     = Mark{Span: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Derived: true}
)

func markText(n Nonce, m Mark) string { return string(AppendMark(nil, n, m)) }

func TestMarkLayout(t *testing.T) {
	got := markText(testNonce, spanA)
	if want := "\x1b_rl1;0123456789abcdef;rb7ad6b7169203331\x1b\\"; got != want || len(got) != MarkLen {
		t.Fatalf("mark %q (%d bytes), want %q (%d)", got, len(got), want, MarkLen)
	}
}

func TestStrip(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
		mark             Mark
	}{
		{"unmarked", "INFO hello", "INFO hello", Mark{}},
		{"at the start", markText(testNonce, spanA) + "INFO hello", "INFO hello", spanA},
		{"derived", markText(testNonce, spanB) + "x", "x", spanB},
		{"mid-line, from a write that bypassed the hook", "ab" + markText(testNonce, spanA) + "cd", "abcd", spanA},
		{"two: the first counts", markText(testNonce, spanB) + "a" + markText(testNonce, spanA), "a", spanB},
		{"another nonce is text", markText(otherNnc, spanA) + "x", markText(otherNnc, spanA) + "x", Mark{}},
		{"a forged one before the real one", markText(otherNnc, spanB) + markText(testNonce, spanA) + "x", markText(otherNnc, spanB) + "x", spanA},
		{"cut short", markText(testNonce, spanA)[:30], markText(testNonce, spanA)[:30], Mark{}},
		{"bad kind", strings.Replace(markText(testNonce, spanA), ";r", ";x", 1), strings.Replace(markText(testNonce, spanA), ";r", ";x", 1), Mark{}},
		{"upper-case span", strings.Replace(markText(testNonce, spanA), "b7ad", "B7AD", 1), strings.Replace(markText(testNonce, spanA), "b7ad", "B7AD", 1), Mark{}},
		{"zero span", markText(testNonce, Mark{}), markText(testNonce, Mark{}), Mark{}},
		{"ANSI colours stay", markText(testNonce, spanA) + "\x1b[31mERROR\x1b[0m", "\x1b[31mERROR\x1b[0m", spanA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m := Strip([]byte(tc.line), testNonce)
			if string(got) != tc.want || m != tc.mark {
				t.Errorf("Strip(%q) = %q %+v, want %q %+v", tc.line, got, m, tc.want, tc.mark)
			}
		})
	}
}

func TestParseNonce(t *testing.T) {
	if n, err := ParseNonce([]byte(" 0123456789abcdef\n")); err != nil || n != testNonce {
		t.Errorf("ParseNonce: %v %v", n, err)
	}
	for _, bad := range []string{"", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdefa", "0123456789abcdeg"} {
		if _, err := ParseNonce([]byte(bad)); err == nil {
			t.Errorf("ParseNonce(%q) accepted", bad)
		}
	}
	if a, b := NewNonce(), NewNonce(); a == b || a.IsZero() {
		t.Errorf("NewNonce gave %s and %s", a, b)
	}
}

// TestStripWriterSplits: marks split across writes at every byte are
// still removed, and nothing else is changed, held or lost.
func TestStripWriterSplits(t *testing.T) {
	m := markText(testNonce, spanA)
	input := m + "line one\n" + m + "\x1b[31mred\x1b[0m " + strings.Repeat("x", 5000) + "\n" +
		markText(otherNnc, spanA) + "forged\n" + "no newline at the end" + m[:20]
	want := "line one\n" + "\x1b[31mred\x1b[0m " + strings.Repeat("x", 5000) + "\n" +
		markText(otherNnc, spanA) + "forged\n" + "no newline at the end" + m[:20]
	for cut := 1; cut < 120; cut++ {
		var out bytes.Buffer
		w := &StripWriter{W: &out, Nonce: testNonce}
		for rest := input; len(rest) > 0; {
			k := min(cut, len(rest))
			if n, err := w.Write([]byte(rest[:k])); n != k || err != nil {
				t.Fatalf("Write: %d %v", n, err)
			}
			rest = rest[k:]
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("writes of %d bytes: got %q", cut, out.String())
		}
	}
}

func FuzzStripWriter(f *testing.F) {
	f.Add([]byte(markText(testNonce, spanA)+"hello\n"), uint8(7))
	f.Add([]byte("a\x1b_rl1;0123\x1b[0m"+markText(testNonce, spanB)), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var whole, pieces bytes.Buffer
		w := &StripWriter{W: &whole, Nonce: testNonce}
		w.Write(in)
		w.Flush()
		p := &StripWriter{W: &pieces, Nonce: testNonce}
		step := int(cut%64) + 1
		for i := 0; i < len(in); i += step {
			p.Write(in[i:min(i+step, len(in))])
		}
		p.Flush()
		if whole.String() != pieces.String() {
			t.Fatalf("in one write %q, in pieces of %d %q", whole.String(), step, pieces.String())
		}
		line, _ := Strip(bytes.Clone(in), testNonce)
		if bytes.IndexByte(in, '\n') < 0 && string(line) != whole.String() {
			t.Fatalf("Strip %q, StripWriter %q", line, whole.String())
		}
	})
}

func BenchmarkStrip(b *testing.B) {
	line := []byte(markText(testNonce, spanA) + `INFO:werkzeug:127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart HTTP/1.1" 200 -`)
	buf := make([]byte, len(line))
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		copy(buf, line)
		Strip(buf, testNonce)
	}
}

func TestEnv(t *testing.T) {
	n := testNonce
	got := Env([]string{"HOME=/root", "PYTHONPATH=/app/lib", "NODE_OPTIONS=--max-old-space-size=512", "REPLAYLINK_HOOK_NONCE=forged"}, "/srv/hooks", n)
	want := []string{"HOME=/root", "PYTHONPATH=/srv/hooks/python:/app/lib",
		"NODE_OPTIONS=--max-old-space-size=512 --require=/srv/hooks/node/replaylink-hook.js", "REPLAYLINK_HOOK_NONCE=" + n.String()}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Env:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = Env([]string{"PATH=/bin"}, "/my hooks", n)
	if got[1] != "PYTHONPATH=/my hooks/python" || got[2] != `NODE_OPTIONS=--require="/my hooks/node/replaylink-hook.js"` {
		t.Errorf("Env without the variables: %q", got)
	}
}

func TestPythonIsolated(t *testing.T) {
	for cmd, want := range map[string]bool{
		"python3 app.py":            false,
		"python3 -I app.py":         true,
		"python -S -m flask run":    true,
		"python3.12 -BE app.py":     true,
		"python3 -W ignore -I x.py": true,
		"python3 -m isort":          false,
		"python3 -c import sys":     false,
		"gunicorn -w 2 app:app":     false,
		"node -I x.js":              false,
		"python3 --version":         false,
	} {
		if got := PythonIsolated(strings.Fields(cmd)); got != want {
			t.Errorf("PythonIsolated(%q) = %v", cmd, got)
		}
	}
}

func TestInstallAndNonceFile(t *testing.T) {
	dir := t.TempDir()
	if err := Install(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"python/sitecustomize.py", "python/_replaylink_hook.py", "node/replaylink-hook.js"} {
		want, _ := files.ReadFile(f)
		if got, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s not installed: %v", f, err)
		}
	}
	a, err := LoadOrCreateNonce(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := LoadOrCreateNonce(dir); err != nil || a != b {
		t.Errorf("the nonce changed: %s then %s (%v)", a, b, err)
	}
	os.WriteFile(filepath.Join(dir, NonceFile), []byte("not a nonce"), 0o644)
	if _, err := LoadOrCreateNonce(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("a bad nonce file: %v", err)
	}
}
