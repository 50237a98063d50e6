package enrich

import (
	"bytes"
	"strings"
)

// level is OpenReplay's level of a document. Its player calls
// level.includes("error"|"warning"|"info"|"debug"), so every document gets
// exactly one of these four words.
type level uint8

const (
	levelUnknown level = iota // not said by the line; becomes info unless something says error
	levelDebug
	levelInfo
	levelWarning
	levelError
)

var levelNames = [...]string{"info", "debug", "info", "warning", "error"}

func (l level) String() string { return levelNames[l] }

// problem reports whether documents of this level always carry the marker.
func (l level) problem() bool { return l >= levelWarning }

// levelWord maps the level names loggers write (any case) onto the four
// levels: Python (WARNING, CRITICAL), Java (SEVERE, FINE), syslog (notice,
// emerg), Go (zerolog's WRN, logrus' ERRO, zap's DPANIC) and so on.
func levelWord(w []byte) level {
	if len(w) == 0 || len(w) > 13 {
		return levelUnknown
	}
	var buf [13]byte
	for i, c := range w {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(w)]) {
	case "trace", "trc", "trac", "debug", "dbg", "debu", "verbose", "fine", "finer", "finest", "d":
		return levelDebug
	case "info", "inf", "information", "informational", "notice", "config", "i":
		return levelInfo
	case "warn", "warning", "wrn", "w":
		return levelWarning
	case "error", "err", "erro", "eror", "fatal", "fata", "ftl", "critical", "crit", "panic", "pani", "pnc",
		"dpanic", "severe", "alert", "emerg", "emergency", "e", "f":
		return levelError
	}
	return levelUnknown
}

// levelNumber maps numeric levels: pino and bunyan (10 trace, 20 debug, 30
// info, 40 warn, 50 error, 60 fatal), logback's level_value (5000 trace ...
// 40000 error), and syslog severities 0-7.
func levelNumber(n int64) level {
	switch {
	case n < 0:
		return levelUnknown
	case n <= 7: // syslog: 0 emerg ... 3 err, 4 warning, 5 notice, 6 info, 7 debug
		switch {
		case n <= 3:
			return levelError
		case n == 4:
			return levelWarning
		case n <= 6:
			return levelInfo
		}
		return levelDebug
	case n >= 1000: // logback's level_value: 5000 trace, 10000 debug, 20000 info, 30000 warn, 40000 error
		n = n/1000 + 10
	}
	switch {
	case n < 30:
		return levelDebug
	case n < 40:
		return levelInfo
	case n < 50:
		return levelWarning
	}
	return levelError
}

// textLevelWindow bounds how far into a plain-text line the level is looked
// for: far enough for a timestamp, a pid, a thread and a logger name, near
// enough not to read the message.
const textLevelWindow = 128

// textLevel finds the level of a plain-text line (without ANSI codes) and
// the word that said it. It recognises the prefixes of the common formats:
// Python logging ("ERROR:root:"), Flask ("] ERROR in app:"), gunicorn
// ("[ERROR]"), Ruby and Rails ("E, [..] ERROR --"), klog ("E0501 10:00"),
// systemd ("<3>"), winston ("error: "), logback, log4j, Spring Boot, zap's
// console, zerolog's console ("ERR"), logrus ("ERRO[0000]"), Java's JUL
// ("SEVERE:"), Django's request messages, and exception lines
// ("KeyError: 'x'", "TypeError: x").
func textLevel(s []byte) (level, []byte) {
	if len(s) == 0 {
		return levelUnknown, nil
	}
	// Prefixes with a fixed shape.
	if len(s) >= 3 && s[0] == '<' && s[1] >= '0' && s[1] <= '7' && s[2] == '>' {
		return levelNumber(int64(s[1] - '0')), s[1:2]
	}
	if len(s) >= 6 && strings.IndexByte("IWEF", s[0]) >= 0 && isDigits(s[1:5]) && s[5] == ' ' {
		return levelWord(s[:1]), s[:1] // klog/glog: "E0501 10:00:00.123456 1 file.go:12] msg"
	}
	for _, p := range djangoPrefixes {
		if hasPrefix(s, p.prefix) {
			return p.level, nil
		}
	}
	if t, _, ok := splitException(firstLine(s), true); ok {
		if bytes.HasSuffix(t, []byte("Warning")) {
			return levelWarning, nil // Python's warnings: "UserWarning: x"
		}
		return levelError, nil
	}
	if isPythonWarning(s) {
		return levelWarning, nil
	}

	window := s
	if len(window) > textLevelWindow {
		window = window[:textLevelWindow]
	}
	for i := 0; i < len(window); {
		if !isWordByte(window[i]) {
			i++
			continue
		}
		j := i
		for j < len(window) && isWordByte(window[j]) {
			j++
		}
		w := window[i:j]
		if l := levelWord(w); l != levelUnknown && len(w) >= 3 {
			switch {
			case isUpper(w):
				return l, w
			case i == 0 && j < len(s) && s[j] == ':':
				return l, w // winston: "error: boom"
			case i > 0 && j < len(s) && (window[i-1] == '[' && s[j] == ']' || window[i-1] == '<' && s[j] == '>'):
				return l, w // "[error]", "<warn>"
			}
		}
		i = j
	}
	return levelUnknown, nil
}

var djangoPrefixes = []struct {
	prefix string
	level  level
}{
	{"Internal Server Error: /", levelError},
	{"Bad Request: /", levelWarning},
	{"Not Found: /", levelWarning},
	{"Forbidden (", levelWarning},
	{"Method Not Allowed (", levelWarning},
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func isUpper(w []byte) bool {
	for _, c := range w {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// hasPrefix is bytes.HasPrefix for a string prefix, without converting it.
func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}
