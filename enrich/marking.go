package enrich

import "github.com/replaylink/replaylink/internal/choice"

// The marking policy decides which documents carry [openReplaySession.id=N]
// in message. OpenReplay finds a session's logs with one match_phrase query
// on message that returns at most 1000 hits, unsorted: a long session of
// successful requests (two documents each, access and backend) would fill
// those hits with info documents and push its errors out of view. So by
// default (auto) warning and error documents always carry the marker and
// info and debug documents only the first MarkInfoLimit of each session.
// Every document of a session still carries openReplaySession.id, so lookups
// and Kibana find all of them.
//
// The markingPolicy is owned by the enricher's worker goroutine.

// MarkMode is the marking policy (--mark). Its zero value is MarkAuto.
type MarkMode uint8

const (
	MarkAuto     MarkMode = iota // problems always, info up to the limit per session
	MarkAll                      // every document of a session
	MarkProblems                 // warning and error documents only
)

var markModeNames = []string{"auto", "all", "problems"}

func (m MarkMode) String() string { return choice.Name(m, markModeNames) }

// UnmarshalText takes auto, all or problems.
func (m *MarkMode) UnmarshalText(b []byte) error { return choice.Parse(m, b, markModeNames) }

// markingGeneration bounds the sessions whose info count is remembered: two
// generations of this many, the older dropped when the newer fills (an LRU
// approximation without per-entry pointers). A session forgotten this way
// starts counting again, so its marked info documents can exceed the limit;
// its problems are marked either way.
const markingGeneration = 1 << 16

type markingPolicy struct {
	mode     MarkMode
	limit    uint32
	cur, old map[uint64]uint32
}

func newMarkingPolicy(mode MarkMode, limit int) *markingPolicy {
	return &markingPolicy{mode: mode, limit: uint32(limit), cur: make(map[uint64]uint32)}
}

// mark says whether a document of session at level l carries the marker,
// counting it against the session's info limit when it is not a problem.
func (m *markingPolicy) mark(session uint64, l level) bool {
	if session == 0 {
		return false
	}
	switch {
	case m.mode == MarkAll || l.problem():
		return true
	case m.mode == MarkProblems:
		return false
	}
	n, ok := m.cur[session]
	if !ok && m.old != nil {
		n = m.old[session] // seen in the previous generation: carry the count over
		delete(m.old, session)
	}
	if n < m.limit {
		n++
		m.setCount(session, n)
		return true
	}
	if !ok {
		m.setCount(session, n)
	}
	return false
}

func (m *markingPolicy) setCount(session uint64, n uint32) {
	if _, ok := m.cur[session]; !ok && len(m.cur) >= markingGeneration {
		m.old, m.cur = m.cur, make(map[uint64]uint32, markingGeneration)
	}
	m.cur[session] = n
}
