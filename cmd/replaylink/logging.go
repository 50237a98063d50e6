package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds replaylink's own logger (not the documents it ships).
// Each part adds its own "component" field to it.
// Debug calls cost nothing when the level is higher: zerolog checks the
// level before it formats anything.
func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if format == "text" {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
