package hooks

import "github.com/replaylink/replaylink/internal/choice"

// Mode says whether replaylink loads its runtime hooks into a Python or
// Node backend (--hooks). Its zero value is ModeAuto.
type Mode uint8

const (
	ModeAuto Mode = iota // with run, or with serve and --hooks-dir
	ModeOff              // never: lines are attributed by ids and time only
)

var modeNames = []string{"auto", "off"}

func (m Mode) String() string { return choice.Name(m, modeNames) }

// UnmarshalText takes auto or off.
func (m *Mode) UnmarshalText(b []byte) error { return choice.Parse(m, b, modeNames) }
