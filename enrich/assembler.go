package enrich

import (
	"bytes"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture"
	"github.com/replaylink/replaylink/proxy"
)

// The assembler turns access events and captured lines into documents and
// publishes them. It is the state of the pipeline's worker goroutine: only
// that goroutine calls its methods, each with the current time (tests call
// them directly, with a clock of their own).
//
// A request that fails usually yields two records: its 5xx access event, and
// the backend's traceback printed while it ran. When the traceback is
// attributed to that very request (by its request id, or by window), the
// assembler folds both into one error document: the access document, with
// the backend's exception in message and error.*. Either side may come first,
// so a 5xx event waits up to hold for its traceback and a traceback up to
// hold for its event; then each is published alone.

const (
	maxHeld   = 1024 // 5xx access events waiting for a traceback
	maxParked = 1024 // backend errors waiting for their access event
)

type assembler struct {
	attr    *Attributor
	pub     Publisher
	marker  *marker
	grouper *grouper
	parser  lineParser
	service string
	host    string
	hold    time.Duration
	log     zerolog.Logger

	idPrefix []byte
	idSeq    uint64

	now    time.Time // time of the current call: deadlines count from it
	doc    document
	msg    []byte // scratch for the message
	clean  []byte // scratch for a first line without ANSI escapes
	hexbuf [48]byte
	out    []byte // the encoded document
	id     []byte

	held   map[uint64]heldEvent
	parked map[uint64]*parkedGroup
	due    []uint64

	publishFailures int
	lastFailureLog  time.Time
}

type heldEvent struct {
	ev       *proxy.AccessEvent
	deadline time.Time
}

// parkedGroup is a backend error record, copied out of the grouper, waiting
// for the access event of its request.
type parkedGroup struct {
	g        group
	at       attribution
	ids      []byte // owns at.requestID and at.traceID
	deadline time.Time
}

func newAssembler(o Options, attr *Attributor, idPrefix string) *assembler {
	mode, _ := parseMarkMode(o.Mark)
	return &assembler{
		attr:     attr,
		pub:      o.Publisher,
		marker:   newMarker(mode, o.MarkInfoLimit),
		grouper:  newGrouper(o.GroupIdle),
		service:  o.ServiceName,
		host:     o.HostName,
		hold:     2*o.GroupIdle + o.AttributionGrace,
		log:      o.Logger,
		idPrefix: []byte(idPrefix),
		held:     make(map[uint64]heldEvent),
		parked:   make(map[uint64]*parkedGroup),
	}
}

// addEvent takes ownership of ev.
func (a *assembler) addEvent(ev *proxy.AccessEvent, now time.Time) {
	a.now = now
	pg := a.parked[ev.Seq]
	if pg != nil {
		delete(a.parked, ev.Seq)
	}
	if accessLevel(ev) == levelError {
		if pg != nil {
			a.publishAccess(ev, pg)
			ev.Release()
			return
		}
		if _, dup := a.held[ev.Seq]; !dup && ev.Seq != 0 && len(a.held) < maxHeld {
			a.held[ev.Seq] = heldEvent{ev: ev, deadline: now.Add(a.hold)}
			return
		}
	} else if pg != nil {
		a.publishParked(pg) // the request did not fail: the backend error stands alone
	}
	a.publishAccess(ev, nil)
	ev.Release()
}

func (a *assembler) addLine(l *capture.Line, now time.Time) {
	a.now = now
	a.grouper.add(l, a.emitGroup)
}

// tick completes idle groups and publishes what waited too long.
func (a *assembler) tick(now time.Time) {
	a.now = now
	a.grouper.flush(now, a.emitGroup)
	a.expire(func(deadline time.Time) bool { return !deadline.After(now) })
}

// flushAll completes and publishes everything (on shutdown).
func (a *assembler) flushAll() {
	a.grouper.flushAll(a.emitGroup)
	a.expire(func(time.Time) bool { return true })
}

func (a *assembler) expire(due func(time.Time) bool) {
	a.due = dueSeqs(a.due[:0], a.held, func(h heldEvent) bool { return due(h.deadline) })
	for _, seq := range a.due {
		h := a.held[seq]
		delete(a.held, seq)
		a.publishAccess(h.ev, nil)
		h.ev.Release()
	}
	a.due = dueSeqs(a.due[:0], a.parked, func(pg *parkedGroup) bool { return due(pg.deadline) })
	for _, seq := range a.due {
		pg := a.parked[seq]
		delete(a.parked, seq)
		a.publishParked(pg)
	}
}

// dueSeqs appends the keys of m whose value is due, in order: the same
// documents come out in the same order on every run.
func dueSeqs[V any](dst []uint64, m map[uint64]V, due func(V) bool) []uint64 {
	for seq, v := range m {
		if due(v) {
			dst = append(dst, seq)
		}
	}
	slices.Sort(dst)
	return dst
}

// emitGroup is the grouper's emit: it attributes a finished record and
// publishes it, folds it into its request's 5xx document, or parks it.
func (a *assembler) emitGroup(g *group) {
	p := a.parser.parse(g.header())
	ev := evidence{time: g.first, live: g.key.stream.LiveTime(), text: g.text,
		requestID: p.requestID, traceID: p.traceID, marker: p.marker}
	if ev.live {
		ev.request = findRequest(a.withoutANSI(p.message))
	}
	at := a.attr.attribute(&ev)
	attributed[at.level].Inc()
	var r record
	describe(&r, g, p)
	if at.seq != 0 && a.hold > 0 && r.level == levelError {
		if h, ok := a.held[at.seq]; ok {
			delete(a.held, at.seq)
			a.publishMerged(h.ev, g, &r, at.source)
			h.ev.Release()
			return
		}
		if _, ok := a.parked[at.seq]; !ok && len(a.parked) < maxParked {
			a.park(g, &at)
			return
		}
	}
	a.publishBackend(g, p, &r, &at)
}

// withoutANSI returns b, or a copy without its ANSI escapes (werkzeug and
// morgan color their access lines) in a.clean.
func (a *assembler) withoutANSI(b []byte) []byte {
	b = b[:min(len(b), maxRequestScan)]
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	a.clean = stripANSIInto(a.clean[:0], b)
	return a.clean
}

func (a *assembler) park(g *group, at *attribution) {
	pg := &parkedGroup{g: *g, at: *at, deadline: a.now.Add(a.hold)}
	pg.g.text = bytes.Clone(g.text)
	pg.ids = append(append(pg.ids, at.requestID...), at.traceID...)
	pg.at.requestID = pg.ids[:len(at.requestID)]
	pg.at.traceID = pg.ids[len(at.requestID):]
	a.parked[at.seq] = pg
}

// publishParked publishes a parked record alone.
func (a *assembler) publishParked(pg *parkedGroup) {
	p := a.parser.parse(pg.g.header())
	var r record
	describe(&r, &pg.g, p)
	a.publishBackend(&pg.g, p, &r, &pg.at)
}

// publishAccess publishes ev's access document, with the parked backend
// error of its request folded in when there is one.
func (a *assembler) publishAccess(ev *proxy.AccessEvent, pg *parkedGroup) {
	if pg != nil {
		var r record
		describe(&r, &pg.g, a.parser.parse(pg.g.header()))
		a.publishMerged(ev, &pg.g, &r, pg.at.source)
		return
	}
	a.accessDoc(ev)
	a.publish()
	documentsAccess.Inc()
}

// publishMerged publishes ev's access document with the backend error
// record g (described by r, attributed to ev's request by source) folded in.
func (a *assembler) publishMerged(ev *proxy.AccessEvent, g *group, r *record, source string) {
	a.accessDoc(ev)
	d := &a.doc
	d.tagBackend, d.mergedBy = true, source
	d.errType, d.errMsg = r.errType, r.errMsg
	d.stack = g.text // the whole record: its header line says where it came from
	d.logger, d.logLevel = r.logger, r.levelText
	d.truncated = g.truncated
	if len(ev.ProxyError) == 0 {
		a.msg = appendAccessLine(a.msg[:0], ev)
		a.msg = append(a.msg, ' ')
		a.msg = appendSummary(a.msg, r.errType, r.errMsg, r.headline)
		d.message = a.msg
	}
	a.publish()
	documentsAccess.Inc()
	mergedErrors.Inc()
}

// publishBackend publishes the backend document of the record g.
func (a *assembler) publishBackend(g *group, p *parsed, r *record, at *attribution) {
	d := &a.doc
	d.reset()
	d.time = g.first
	if !g.key.stream.LiveTime() {
		// A file or a push may hand over old lines: the backend's own
		// time, when it states its zone, is the better one.
		if t, ok := structuredTime(p.timeRaw, p.timeNum); ok && t.After(g.first.Add(-30*24*time.Hour)) && t.Before(g.first.Add(5*time.Minute)) {
			d.time = t
		}
	}
	d.level = r.level
	d.dataset, d.tagBackend = datasetBackend, true
	d.attribution = at.level
	if at.level != attributionNone {
		d.session, d.source = at.session, at.source
		d.marked = a.marker.mark(at.session, r.level)
	} else {
		d.candidates = append(d.candidates, at.candidates[:at.n]...)
	}

	a.msg = appendRecordMessage(a.msg[:0], g, p, r)
	if at.source == "marker" {
		// The backend wrote the guide's marker itself; the policy decides
		// whether this document carries one.
		a.msg = removeMarker(a.msg, at.session)
	}
	d.message = a.msg

	d.logger, d.logLevel = r.logger, r.levelText
	d.errType, d.errMsg, d.stack = r.errType, r.errMsg, r.stack
	if p.format != formatText {
		d.original = g.text
	}
	d.requestID = at.requestID
	if len(d.requestID) == 0 {
		d.requestID = p.requestID
	}
	d.traceID = at.traceID
	if len(d.traceID) == 0 {
		d.traceID = traceHex(p.traceID)
	}
	d.spanID = p.spanID
	d.stream = g.key.stream.String()
	if g.key.stream == capture.File {
		d.filePath = g.key.origin
	}
	d.truncated = g.truncated
	d.service, d.host = a.service, a.host
	a.publish()
	documentsBackend.Inc()
}

// publish encodes a.doc and hands it to the publisher under a new _id.
func (a *assembler) publish() {
	a.out = appendDocument(a.out[:0], &a.doc)
	a.idSeq++
	a.id = append(a.id[:0], a.idPrefix...)
	a.id = strconv.AppendUint(a.id, a.idSeq, 36)
	if err := a.pub.Publish(a.id, a.out); err != nil {
		publishErrors.Inc()
		a.publishFailures++
		// One message per minute at most: a full spool fails every document.
		if a.now.Sub(a.lastFailureLog) >= time.Minute {
			a.log.Warn().Err(err).Int("failures", a.publishFailures).Msg("enrich: documents could not be published")
			a.lastFailureLog, a.publishFailures = a.now, 0
		}
	}
}
