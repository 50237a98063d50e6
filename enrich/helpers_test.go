package enrich

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// recorder is a Publisher that keeps what it is given: every call in ops,
// and each document (ids, in the order first published) in its latest
// version (docs), as the index ends up with it.
type recorder struct {
	mu   sync.Mutex
	ops  []publishOp
	ids  []string
	docs [][]byte
	bad  []string // calls no index would take: a second Publish of an _id, a Replace of none
}

type publishOp struct {
	replace bool
	id      string
	doc     []byte
}

func (r *recorder) Publish(id, source []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	doc := bytes.Clone(source)
	r.ops = append(r.ops, publishOp{false, string(id), doc})
	if slices.Contains(r.ids, string(id)) {
		r.bad = append(r.bad, "Publish of _id "+string(id)+" again")
		return nil
	}
	r.ids = append(r.ids, string(id))
	r.docs = append(r.docs, doc)
	return nil
}

func (r *recorder) Replace(id, source []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	doc := bytes.Clone(source)
	r.ops = append(r.ops, publishOp{true, string(id), doc})
	i := slices.Index(r.ids, string(id))
	if i < 0 {
		r.bad = append(r.bad, "Replace of _id "+string(id)+", never published")
		return nil
	}
	r.docs[i] = doc
	return nil
}

// replaced counts the Replace calls.
func (r *recorder) replaced() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.ops {
		if o.replace {
			n++
		}
	}
	return n
}

// decoded returns the documents, in their latest version, as maps.
func (r *recorder) decoded(t testing.TB) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		t.Errorf("publisher: %s", b)
	}
	out := make([]map[string]any, len(r.docs))
	for i, d := range r.docs {
		out[i] = checkContract(t, d)
	}
	return out
}

// t0 is the clock of the deterministic tests.
var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// testOptions are the options as config's defaults make them (--mark auto,
// --sessionless all, --mark-info-limit 200, --attribution-grace 20ms,
// --event-queue 16384), without a publisher: tests of something else start
// from them and set what they are about.
func testOptions() Options {
	return Options{Mark: MarkAuto, Sessionless: SessionlessAll, MarkInfoLimit: 200, AttributionGrace: 20 * time.Millisecond, QueueSize: 16384}
}

// newTestAssembler returns an assembler with a fixed _id prefix and host,
// as the worker would run it, committing after every call as the worker
// does after every round, so that tests see each call's documents.
func newTestAssembler(pub Publisher, o Options) *testAssembler {
	o.Publisher = pub
	if o.HostName == "" {
		o.HostName = "host-1"
	}
	o = o.withInternalDefaults()
	return &testAssembler{newAssembler(o, NewAttributor(o.AttributionGrace), "test-")}
}

type testAssembler struct{ *assembler }

func (a *testAssembler) addEvent(ev *proxy.AccessEvent, now time.Time) {
	a.assembler.addEvent(ev, now)
	a.commit()
}

func (a *testAssembler) addLine(l *capture.Line, now time.Time) {
	a.assembler.addLine(l, now)
	a.commit()
}

func (a *testAssembler) tick(now time.Time) {
	a.assembler.tick(now)
	a.commit()
}

func (a *testAssembler) flushAll() {
	a.assembler.flushAll()
	a.commit()
}

func lineAt(t time.Time, stream capture.Stream, text string) *capture.Line {
	return &capture.Line{Time: t, Stream: stream, Text: []byte(text)}
}

// accessEvent builds an AccessEvent as the proxy would hand it over.
func accessEvent(seq, session uint64, start time.Time, d time.Duration, method, path string, status int) *proxy.AccessEvent {
	ev := proxy.AcquireEvent()
	ev.Seq, ev.Session, ev.Start, ev.Duration, ev.Status = seq, session, start, d, status
	ev.Method = append(ev.Method, method...)
	ev.Path = append(ev.Path, path...)
	if session != 0 {
		ev.Source = proxy.SourceHeader
	}
	return ev
}

var (
	timeRe   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	markerRe = regexp.MustCompile(`^\[openReplaySession\.id=(\d+)\] `)
	digitsRe = regexp.MustCompile(`^[1-9]\d*$`)
)

// checkContract parses one document and fails t unless it satisfies
// OpenReplay's contract and replaylink's own rules (docs/document-format.md).
func checkContract(t testing.TB, src []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("document is not JSON: %v\n%s", err, src)
	}
	if dec.More() {
		t.Fatalf("document has trailing data:\n%s", src)
	}
	fail := func(format string, a ...any) {
		t.Helper()
		t.Errorf("contract: "+format+"\n%s", append(a, src)...)
	}
	msg, ok := m["message"].(string)
	if !ok {
		fail("message is not a string")
	}
	ts, _ := m["@timestamp"].(string)
	if !timeRe.MatchString(ts) || m["utc_time"] != ts {
		fail("@timestamp %q and utc_time %v must be the same RFC 3339 UTC instant with milliseconds", ts, m["utc_time"])
	}
	lvl, _ := m["level"].(string)
	if !slices.Contains([]string{"error", "warning", "info", "debug"}, lvl) {
		fail("level %q", lvl)
	}
	var tags []string
	raw, _ := m["tags"].([]any)
	for _, x := range raw {
		s, ok := x.(string)
		if !ok {
			fail("tags holds a non-string")
		}
		tags = append(tags, s)
	}
	if slices.Contains(tags, "error") != (lvl == "error") {
		fail("tags %v must contain error exactly when level is error", tags)
	}
	if !slices.Contains(tags, "access") && !slices.Contains(tags, "backend") {
		fail("tags %v name no source", tags)
	}
	ev, _ := m["event"].(map[string]any)
	if ds := ev["dataset"]; ds != "replaylink.access" && ds != "replaylink.backend" {
		fail("event.dataset %v", ds)
	}
	rl, _ := m["replaylink"].(map[string]any)
	att, _ := rl["attribution"].(string)
	if !slices.Contains([]string{"exact", "window", "none"}, att) {
		fail("replaylink.attribution %q", att)
	}
	sess, hasSession := m["openReplaySession"].(map[string]any)
	var id string
	if hasSession {
		id, _ = sess["id"].(string) // a keyword: always a string
		if !digitsRe.MatchString(id) {
			fail("openReplaySession.id %v is not a string of digits", sess["id"])
		}
		src, _ := sess["source"].(string)
		if _, ok := sess["source"]; ok && !slices.Contains([]string{"header", "token", "token-unverified", "baggage", "cookie", "query", "request-id", "trace-id", "marker", "window"}, src) {
			fail("openReplaySession.source %q", src)
		}
		if att == "none" {
			fail("a document with a session has attribution none")
		}
	} else if att != "none" {
		fail("attribution %s without a session", att)
	}
	if sm := markerRe.FindStringSubmatch(msg); sm != nil {
		if sm[1] != id {
			fail("marker for session %s on a document of session %q", sm[1], id)
		}
		msg = msg[len(sm[0]):]
	}
	if strings.Contains(strings.ToLower(msg), "openreplaysession.id") {
		fail("message carries a marker phrase that replaylink did not write")
	}
	if c, ok := rl["candidates"]; ok {
		if att != "none" {
			fail("candidates on an attributed document")
		}
		for _, x := range c.([]any) {
			if s, _ := x.(string); !digitsRe.MatchString(s) {
				fail("candidate %v", x)
			}
		}
	}
	for _, r := range msg {
		if r == 0x1b || r >= 0x80 && r <= 0x9f {
			fail("message holds escape or C1 control %U", r)
		}
	}
	return m
}

// field reads a dotted path in a decoded document.
func field(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	if n, ok := cur.(json.Number); ok {
		return n.String()
	}
	return cur
}
