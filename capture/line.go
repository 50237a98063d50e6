// Package capture reads what a backend prints: the output of a child process
// (replaylink run), tailed files, and lines pushed to POST /ingest. Every line
// is bounded in length and handed to a Sink; capture never interprets it.
package capture

import "time"

// Stream names where a line came from.
type Stream uint8

const (
	Stdout Stream = iota + 1
	Stderr
	File
	Ingest
)

var streamNames = [...]string{"", "stdout", "stderr", "file", "ingest"}

func (s Stream) String() string {
	if int(s) < len(streamNames) {
		return streamNames[s]
	}
	return "unknown"
}

// Line is one line of backend output, without its line terminator.
// Text is valid only during Sink.Line.
type Line struct {
	Time      time.Time // when replaylink read it
	Stream    Stream
	Origin    string // file path for File, remote address for Ingest, "" otherwise
	Text      []byte
	Truncated bool // the line was longer than the limit and was cut
}

// Sink receives captured lines, in order per (Stream, Origin). It must not block for long.
type Sink interface {
	Line(l *Line)
}
