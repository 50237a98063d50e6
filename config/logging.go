package config

import "github.com/replaylink/replaylink/internal/choice"

// LogLevel is the least severe of replaylink's own messages that are
// written (--log-level). It is declared here, not beside the logger, because
// the logger is built in package main, which config cannot import.
type LogLevel uint8

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

var logLevelNames = []string{"debug", "info", "warn", "error"}

func (l LogLevel) String() string { return choice.Name(l, logLevelNames) }

// UnmarshalText takes debug, info, warn or error.
func (l *LogLevel) UnmarshalText(b []byte) error { return choice.Parse(l, b, logLevelNames) }

// LogFormat is the form of replaylink's own messages (--log-format).
type LogFormat uint8

const (
	LogText LogFormat = iota // one line for people
	LogJSON                  // one JSON object a line
)

var logFormatNames = []string{"text", "json"}

func (f LogFormat) String() string { return choice.Name(f, logFormatNames) }

// UnmarshalText takes text or json.
func (f *LogFormat) UnmarshalText(b []byte) error { return choice.Parse(f, b, logFormatNames) }
