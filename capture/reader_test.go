package capture

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

type got struct {
	text  string
	trunc bool
}

// readLines reads r to its end the way capture does for a pipe or a body.
func readLines(t testing.TB, r io.Reader, max int) ([]got, Position) {
	lr := NewLineReader(r, max)
	defer lr.Release()
	var out []got
	var l Line
	for {
		err := lr.Next(&l)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, got{string(l.Text), l.Truncated})
	}
	if lr.Final(&l) {
		out = append(out, got{string(l.Text), l.Truncated})
	}
	return out, lr.Position()
}

// referenceLines is the obvious unbounded split that LineReader must agree with.
func referenceLines(data []byte, max int) []got {
	var out []got
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		g := got{text: string(line)}
		if len(line) > max {
			g = got{string(line[:max]), true}
		}
		out = append(out, g)
	}
	return out
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(b), c.n, len(c.data))
	copy(b, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestLineReaderEdgeCases(t *testing.T) {
	cases := []struct {
		name string
		in   string
		max  int
		want []got
	}{
		{"empty input", "", 8, nil},
		{"lf", "a\nb\n", 8, []got{{"a", false}, {"b", false}}},
		{"crlf", "a\r\nb\r\n", 8, []got{{"a", false}, {"b", false}}},
		{"no final newline", "a\nb", 8, []got{{"a", false}, {"b", false}}},
		{"final cr without lf", "a\nb\r", 8, []got{{"a", false}, {"b", false}}},
		{"empty lines", "\n\n\r\nx\n", 8, []got{{"", false}, {"", false}, {"", false}, {"x", false}}},
		{"lone cr inside", "a\rb\n", 8, []got{{"a\rb", false}}},
		{"only one cr stripped", "a\r\r\n", 8, []got{{"a\r", false}}},
		{"invalid utf8 untouched", "\xff\xfe\x00z\xc3\n\xed\xa0\x80", 8, []got{{"\xff\xfe\x00z\xc3", false}, {"\xed\xa0\x80", false}}},
		{"exactly max", "abcd\n", 4, []got{{"abcd", false}}},
		{"exactly max crlf", "abcd\r\nef\n", 4, []got{{"abcd", false}, {"ef", false}}},
		{"exactly max at eof", "abcd", 4, []got{{"abcd", false}}},
		{"max plus one", "abcde\n", 4, []got{{"abcd", true}}},
		{"max plus one crlf", "abcde\r\n", 4, []got{{"abcd", true}}},
		{"long then short", "abcdefghijklmnop\nxy\n", 4, []got{{"abcd", true}, {"xy", false}}},
		{"long at eof", "abcdefghijklmnop", 4, []got{{"abcd", true}}},
		{"max plus one at eof", "abcde", 4, []got{{"abcd", true}}},
		{"long lines in a row", "aaaaaaaaaa\nbbbbbbbbbb\r\nc\n", 4, []got{{"aaaa", true}, {"bbbb", true}, {"c", false}}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"3 bytes":  func(s string) io.Reader { return &chunkReader{[]byte(s), 3} },
		"data+eof": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				lines, pos := readLines(t, mk(c.in), c.max)
				if len(lines) != len(c.want) {
					t.Fatalf("got %d lines %+v, want %+v", len(lines), lines, c.want)
				}
				for i := range lines {
					if lines[i] != c.want[i] {
						t.Errorf("line %d = %+v, want %+v", i, lines[i], c.want[i])
					}
				}
				if pos.Offset != int64(len(c.in)) {
					t.Errorf("final offset %d, want %d", pos.Offset, len(c.in))
				}
			})
		}
	}
}

// generator yields n bytes of 'x' then tail, without allocating.
type generator struct {
	n    int
	tail string
}

func (g *generator) Read(b []byte) (int, error) {
	if g.n > 0 {
		k := min(len(b), g.n)
		for i := range b[:k] {
			b[i] = 'x'
		}
		g.n -= k
		return k, nil
	}
	if g.tail == "" {
		return 0, io.EOF
	}
	k := copy(b, g.tail)
	g.tail = g.tail[k:]
	return k, nil
}

// A 10 MB line must cost the bounded buffer, not 10 MB.
func TestLineReaderLongLineMemory(t *testing.T) {
	const lineBytes = 10 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	lines, _ := readLines(t, &generator{n: lineBytes, tail: "\nok\n"}, DefaultMaxLineBytes)
	runtime.ReadMemStats(&after)
	if len(lines) != 2 || len(lines[0].text) != DefaultMaxLineBytes || !lines[0].trunc || lines[1] != (got{"ok", false}) {
		t.Fatalf("got %d lines, first %d bytes truncated=%v, then %+v", len(lines), len(lines[0].text), lines[0].trunc, lines[1:])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("reading a %d-byte line allocated %d bytes; want the bounded buffer only", lineBytes, alloc)
	}
}

// growingFile stands for a file being appended to: EOF at its current end.
type growingFile struct {
	data []byte
	off  int
}

func (g *growingFile) Read(b []byte) (int, error) {
	if g.off == len(g.data) {
		return 0, io.EOF
	}
	n := copy(b, g.data[g.off:])
	g.off += n
	return n, nil
}

func TestLineReaderFollowsGrowingInput(t *testing.T) {
	g := &growingFile{data: []byte("a\nb")}
	lr := NewLineReader(g, 8)
	defer lr.Release()
	var l Line
	if err := lr.Next(&l); err != nil || string(l.Text) != "a" {
		t.Fatalf("first: %q, %v", l.Text, err)
	}
	if err := lr.Next(&l); err != io.EOF {
		t.Fatalf("unfinished line: want io.EOF, got %v (%q)", err, l.Text)
	}
	if p := lr.Position(); p != (Position{Offset: 2}) {
		t.Fatalf("position before the unfinished line: %+v", p)
	}
	g.data = append(g.data, "c\nd\n"...)
	for _, want := range []string{"bc", "d"} {
		if err := lr.Next(&l); err != nil || string(l.Text) != want {
			t.Fatalf("after growth: %q, %v; want %q", l.Text, err, want)
		}
	}
	if p := lr.Position(); p != (Position{Offset: 7}) {
		t.Fatalf("position at the end: %+v", p)
	}
}

func TestLineReaderPositionInLongLine(t *testing.T) {
	g := &growingFile{data: []byte("0123456789")}
	lr := NewLineReader(g, 4)
	var l Line
	if err := lr.Next(&l); err != nil || string(l.Text) != "0123" || !l.Truncated {
		t.Fatalf("head of long line: %q truncated=%v err=%v", l.Text, l.Truncated, err)
	}
	if err := lr.Next(&l); err != io.EOF {
		t.Fatalf("want io.EOF inside the long line, got %v", err)
	}
	p := lr.Position()
	lr.Release()
	if p != (Position{Offset: 10, InLongLine: true}) {
		t.Fatalf("position: %+v", p)
	}

	// Resumed on the rest of the input (as the tailer does after a restart),
	// the rest of the long line is skipped.
	lr = NewLineReader(strings.NewReader("abc\nnext\n"), 4)
	defer lr.Release()
	lr.SetPosition(p)
	if err := lr.Next(&l); err != nil || string(l.Text) != "next" || l.Truncated {
		t.Fatalf("after resume: %q truncated=%v err=%v", l.Text, l.Truncated, err)
	}
	if got := lr.Position(); got != (Position{Offset: 19}) {
		t.Fatalf("position after resume: %+v", got)
	}
}

// chunks hands out one chunk per Read, waiting for each to be sent.
type chunks chan string

func (c chunks) Read(b []byte) (int, error) {
	s, ok := <-c
	if !ok {
		return 0, io.EOF
	}
	return copy(b, s), nil
}

// A line's time is when its first byte arrived, not when it was returned.
func TestLineReaderTimes(t *testing.T) {
	c := make(chunks, 2)
	lr := NewLineReader(c, 64)
	defer lr.Release()
	var l Line
	c <- "a\nb"
	if err := lr.Next(&l); err != nil || string(l.Text) != "a" {
		t.Fatalf("a: %q %v", l.Text, err)
	}
	tA := l.Time
	time.Sleep(5 * time.Millisecond)
	c <- "c\nd\n"
	if err := lr.Next(&l); err != nil || string(l.Text) != "bc" {
		t.Fatalf("bc: %q %v", l.Text, err)
	}
	if !l.Time.Equal(tA) {
		t.Errorf("line bc began in the first chunk: time %v, want %v", l.Time, tA)
	}
	if err := lr.Next(&l); err != nil || string(l.Text) != "d" {
		t.Fatalf("d: %q %v", l.Text, err)
	}
	if !l.Time.After(tA) {
		t.Errorf("line d came in the second chunk: time %v not after %v", l.Time, tA)
	}
}

func TestLineReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLineReader(iotest.TimeoutReader(strings.NewReader("a\nb")), 8)
	defer lr.Release()
	var l Line
	if err := lr.Next(&l); err != nil || string(l.Text) != "a" {
		t.Fatalf("a: %q %v", l.Text, err)
	}
	if err := lr.Next(&l); err != iotest.ErrTimeout {
		t.Fatalf("want the reader's error, got %v", err)
	}

	lr2 := NewLineReader(io.MultiReader(strings.NewReader("x\ny\n"), iotest.ErrReader(boom)), 8)
	defer lr2.Release()
	var texts []string
	var err error
	for err == nil {
		if err = lr2.Next(&l); err == nil {
			texts = append(texts, string(l.Text))
		}
	}
	if err != boom || strings.Join(texts, ",") != "x,y" {
		t.Fatalf("lines before the error %q, error %v", texts, err)
	}

	lr3 := NewLineReader(zeroReader{}, 8)
	defer lr3.Release()
	if err := lr3.Next(&l); err != io.ErrNoProgress {
		t.Fatalf("reader that never returns data: want io.ErrNoProgress, got %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func BenchmarkLineReader(b *testing.B) {
	line := "2024-05-01 12:00:00,123 INFO werkzeug: 127.0.0.1 - - \"GET /api/cart HTTP/1.1\" 200 -\n"
	data := []byte(strings.Repeat(line, 1<<14))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	var l Line
	for b.Loop() {
		r.Reset(data)
		lr := NewLineReader(r, DefaultMaxLineBytes)
		for lr.Next(&l) == nil {
		}
		lr.Release()
	}
}

func BenchmarkLineReaderLongLine(b *testing.B) {
	const lineBytes = 10 << 20
	b.SetBytes(lineBytes)
	b.ReportAllocs()
	var l Line
	for b.Loop() {
		lr := NewLineReader(&generator{n: lineBytes, tail: "\n"}, DefaultMaxLineBytes)
		for lr.Next(&l) == nil {
		}
		lr.Release()
	}
}
