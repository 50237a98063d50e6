// Package capture reads what a backend prints: the output of a child process
// (replaylink run), tailed files, and lines pushed to POST /ingest. Every line
// is bounded in length and handed to a Sink; capture never interprets it.
//
// The parts, one per file: LineReader (reader.go) splits any input into
// bounded lines with pooled buffers; Process (process.go) runs the backend,
// passes its output through unchanged and forwards signals; Tailer (tail.go)
// follows files across rotation and restarts; IngestHandler (ingest.go)
// takes pushed lines. Counters are in metrics.go.
//
// Choices: the child's exit is final by default, like a container
// entrypoint (RestartPolicy offers on-failure and always); a tailed file
// found at start-up is read from its end (TailerOptions.FromBeginning reads
// it whole), one appearing later from its start; file offsets are saved
// only past lines already handed to the Sink (at-least-once).
package capture

import (
	"time"

	"github.com/replaylink/replaylink/capture/hooks"
)

// Stream names where a line came from.
type Stream uint8

const (
	Stdout Stream = iota + 1
	Stderr
	File
	Ingest
)

// LiveTime reports whether Line.Time of this stream is within a few
// milliseconds of when the backend printed the line. It is for Stdout and
// Stderr (read from a pipe as they are written). File lines are read up to a
// poll interval after they were written (and all at once after a restart),
// Ingest lines whenever an agent pushes its batch: their Time must not be used
// to decide which request was in flight when they were printed.
func (s Stream) LiveTime() bool { return s == Stdout || s == Stderr }

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
	// Hook is the mark a runtime hook put on the line (the request that
	// printed it); zero when unmarked. Its mark is no longer in Text.
	Hook hooks.Mark
}

// Sink receives captured lines, in order per (Stream, Origin). It must not block for long.
// Line is called from several goroutines at once (stdout and stderr of a child,
// the tailer, concurrent POST /ingest requests), so a Sink must be safe for
// concurrent use; calls for one (Stream, Origin) never overlap.
type Sink interface {
	Line(l *Line)
}
