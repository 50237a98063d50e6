package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/config"
)

// newLogger builds replaylink's own logger (not the documents it ships).
// Each part adds its own "component" field to it.
// Debug calls cost nothing when the level is higher: zerolog checks the
// level before it formats anything.
func newLogger(w io.Writer, level config.LogLevel, format config.LogFormat) zerolog.Logger {
	lvl := zerologLevels[level]
	if format == config.LogText {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// zerologLevels are --log-level's values as zerolog's.
var zerologLevels = map[config.LogLevel]zerolog.Level{
	config.LogDebug: zerolog.DebugLevel, config.LogInfo: zerolog.InfoLevel,
	config.LogWarn: zerolog.WarnLevel, config.LogError: zerolog.ErrorLevel,
}
