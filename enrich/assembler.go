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
// publishes them. It is the state of the enricher's worker goroutine: only
// that goroutine calls its methods, each with the current time (tests call
// them directly, with a clock of their own).
//
// A request that fails usually yields two records: its 5xx access event, and
// the backend's traceback printed while it ran. When the traceback is
// attributed to that very request (by its request id, or by window), the
// assembler folds both into one error document: the access document, with
// the backend's exception in message and error.*. Either side may come
// first, and neither is kept only in memory for long (a SIGKILL must not
// lose what replaylink took, least of all the error a replay needs):
//
//   - a 5xx event is published at once, and kept for hold: when its
//     traceback comes in that time, the merged document replaces the
//     published one (Publisher.Replace, same _id);
//   - a traceback waits up to parkWait for its event (usually already on
//     its way: the backend prints the traceback, then answers) and is
//     published once, merged, when the event comes in that time. Otherwise
//     it is published alone and kept for the rest of hold: when a 5xx event
//     comes in that time, the merged document replaces it.
//
// Either way the index ends up with one document per failing request.
//
// A request may print several error records: a one-line "checkout failed"
// before the panic or traceback that says why. Each that comes while the
// merged document may still be replaced is folded in too (up to
// maxFolded), so the request keeps one error document; its error.* and
// its summary in message come from the record with a real stack, not from
// the first one-liner, and error.stack_trace holds every folded record in
// the order printed.

const (
	maxHeld   = 1024 // published 5xx access events that a traceback may still replace
	maxParked = 1024 // backend errors waiting for their access event
	// maxFolded bounds the backend error records folded into one access
	// document; their text together stays within maxGroupBytes too.
	maxFolded = 8
	// parkWait bounds how long a backend error stays unpublished, waiting
	// for the access event of its request.
	parkWait = 50 * time.Millisecond
	// maxRoundDocs bounds a commit: a round that makes more documents hands
	// them on in several Rounds, so that the Round's buffer stays small.
	maxRoundDocs = 512
)

type assembler struct {
	attr    *Attributor
	pub     Publisher
	marking *markingPolicy
	grouper *grouper
	parser  lineParser
	service string
	host    string
	// sessionless decides what becomes of documents of no session.
	sessionless SessionlessPolicy
	hold        time.Duration // how long a published half may still be replaced by the merged document
	wait        time.Duration // how long a backend error waits unpublished: min(hold, parkWait)
	log         zerolog.Logger

	idPrefix []byte
	idSeq    uint64 // of the last document made; _ids end with it in base 36

	now    time.Time // time of the current call: deadlines count from it
	doc    document
	msg    []byte // scratch for the message
	clean  []byte // scratch for a first line without ANSI escapes
	stack  []byte // scratch for the folded records' text
	hexbuf [48]byte
	id     []byte
	round  Round // documents made since the last commit

	held   map[uint64]heldEvent
	parked map[uint64]*parkedGroup
	due    []uint64

	publishFailures int
	lastFailureLog  time.Time
}

// heldEvent is a 5xx access event whose document is published (as docSeq),
// kept until deadline in case its traceback, or another error record of
// its request, comes; recs are the records folded into it so far.
type heldEvent struct {
	ev       *proxy.AccessEvent
	docSeq   uint64
	deadline time.Time
	recs     []keptRecord
}

// parkedGroup is a backend error record (or several of one request),
// waiting for the access event of its request: unpublished (docSeq 0)
// until deadline, then published alone and kept until expires.
type parkedGroup struct {
	recs     []keptRecord
	docSeq   uint64
	deadline time.Time
	expires  time.Time
}

// keptRecord is a backend error record copied out of the grouper, with
// its attribution, to be folded into its request's document later.
type keptRecord struct {
	g   group
	at  attribution
	ids []byte // owns at.requestID and at.traceID
}

func keep(g *group, at *attribution) keptRecord {
	k := keptRecord{g: *g, at: *at}
	k.g.text = bytes.Clone(g.text)
	k.ids = append(append(k.ids, at.requestID...), at.traceID...)
	k.at.requestID = k.ids[:len(at.requestID)]
	k.at.traceID = k.ids[len(at.requestID):]
	return k
}

// canFold says whether g may join recs in one document.
func canFold(recs []keptRecord, g *group) bool {
	n := len(g.text)
	for i := range recs {
		n += len(recs[i].g.text) + 1
	}
	return len(recs) < maxFolded && n <= maxGroupBytes
}

func newAssembler(o Options, attr *Attributor, idPrefix string) *assembler {
	hold := 2*o.GroupIdle + o.AttributionGrace
	return &assembler{
		attr:        attr,
		pub:         o.Publisher,
		marking:     newMarkingPolicy(o.Mark, o.MarkInfoLimit),
		grouper:     newGrouper(o.GroupIdle),
		service:     o.ServiceName,
		host:        o.HostName,
		sessionless: o.Sessionless,
		hold:        hold,
		wait:        min(hold, parkWait),
		log:         o.Logger,
		idPrefix:    []byte(idPrefix),
		held:        make(map[uint64]heldEvent),
		parked:      make(map[uint64]*parkedGroup),
	}
}

// addEvent takes ownership of ev.
func (a *assembler) addEvent(ev *proxy.AccessEvent, now time.Time) {
	a.now = now
	pg := a.parked[ev.Seq]
	if pg != nil {
		delete(a.parked, ev.Seq)
	}
	switch {
	case pg != nil && accessLevel(ev) == levelError:
		a.accessDoc(ev)
		a.fold(ev, pg.recs)
		docSeq := pg.docSeq
		if docSeq != 0 {
			a.replace(docSeq) // the backend document published alone becomes the merged one
		} else {
			docSeq = a.publish()
			documentsAccess.Inc()
		}
		mergedErrors.Inc()
		if a.holdEvent(ev, docSeq, pg.recs) {
			return // another error record of the request may still fold in
		}
	case accessLevel(ev) == levelError:
		docSeq := a.publishAccess(ev)
		if a.holdEvent(ev, docSeq, nil) {
			return
		}
	default:
		if pg != nil && pg.docSeq == 0 {
			a.publishParked(pg) // the request did not fail: the backend error stands alone
		}
		a.publishAccess(ev)
	}
	ev.Release()
}

// holdEvent keeps ev, whose document is published as docSeq with recs
// folded in, for hold, and says whether it did (then it owns ev).
func (a *assembler) holdEvent(ev *proxy.AccessEvent, docSeq uint64, recs []keptRecord) bool {
	if _, dup := a.held[ev.Seq]; dup || ev.Seq == 0 || a.hold <= 0 || len(a.held) >= maxHeld {
		return false
	}
	a.held[ev.Seq] = heldEvent{ev: ev, docSeq: docSeq, deadline: a.now.Add(a.hold), recs: recs}
	return true
}

func (a *assembler) addLine(l *capture.Line, now time.Time) {
	a.now = now
	a.grouper.add(l, a.emitGroup)
}

// tick completes idle groups and publishes or forgets what waited long enough.
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
		h.ev.Release() // its document is published: only the chance to merge ends
	}
	a.due = dueSeqs(a.due[:0], a.parked, func(pg *parkedGroup) bool { return due(pg.deadline) })
	for _, seq := range a.due {
		pg := a.parked[seq]
		if pg.docSeq == 0 {
			pg.docSeq = a.publishParked(pg)
			pg.deadline = pg.expires
			if !due(pg.deadline) {
				continue // a late 5xx event may still replace it
			}
		}
		delete(a.parked, seq)
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
	ev := evidence{time: g.first, live: g.key.stream.LiveTime(), text: g.text, hook: g.key.hook,
		requestID: p.requestID, traceID: p.traceID, fieldSession: p.fieldSession, msgMarker: p.msgMarker}
	if ev.live {
		ev.request = findRequest(a.withoutANSI(p.message))
	}
	at := a.attr.attribute(&ev)
	attributed[at.level].Inc()
	attributedBy(at.source).Inc()
	if at.seq != 0 && a.hold > 0 {
		var r record
		describe(&r, g, p)
		if r.level == levelError {
			if h, ok := a.held[at.seq]; ok && canFold(h.recs, g) {
				if len(h.recs) == 0 {
					mergedErrors.Inc()
				}
				h.recs = append(h.recs, keep(g, &at))
				a.held[at.seq] = h
				a.accessDoc(h.ev)
				a.fold(h.ev, h.recs)
				a.replace(h.docSeq) // the access document published before becomes the merged one
				return
			}
			if pg, ok := a.parked[at.seq]; ok && pg.docSeq == 0 && canFold(pg.recs, g) {
				pg.recs = append(pg.recs, keep(g, &at))
				return
			}
			if _, ok := a.parked[at.seq]; !ok && len(a.parked) < maxParked {
				a.parked[at.seq] = &parkedGroup{recs: []keptRecord{keep(g, &at)}, deadline: a.now.Add(a.wait), expires: a.now.Add(a.hold)}
				return
			}
		}
	}
	a.publishBackend(g, p, &at)
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

// publishParked publishes the records of pg alone, each as its own
// document, and returns the sequence number of the first one's: a late 5xx
// event replaces that one with the merged document, so pg keeps only it.
func (a *assembler) publishParked(pg *parkedGroup) uint64 {
	first := uint64(0)
	for i := range pg.recs {
		k := &pg.recs[i]
		seq := a.publishBackend(&k.g, a.parser.parse(k.g.header()), &k.at)
		if i == 0 {
			first = seq
		}
	}
	pg.recs = pg.recs[:1]
	return first
}

// publishAccess publishes ev's access document and returns its sequence
// number.
func (a *assembler) publishAccess(ev *proxy.AccessEvent) uint64 {
	a.accessDoc(ev)
	documentsAccess.Inc()
	return a.publish()
}

// fold adds the backend error records recs, attributed to ev's request,
// to ev's access document in a.doc. The record with a real stack (a
// traceback, a panic) names the error and says it in message; without
// one, the first record does. error.stack_trace holds every record, each
// whole (its header line says where it came from), in the order printed.
func (a *assembler) fold(ev *proxy.AccessEvent, recs []keptRecord) {
	slices.SortStableFunc(recs, func(x, y keptRecord) int { return x.g.first.Compare(y.g.first) })
	var r record
	primary := -1
	for i := range recs {
		describe(&r, &recs[i].g, a.parser.parse(recs[i].g.header()))
		if len(r.stack) > 0 {
			primary = i
			break
		}
	}
	if primary < 0 {
		primary = 0
		describe(&r, &recs[0].g, a.parser.parse(recs[0].g.header()))
	}
	d := &a.doc
	d.tagBackend, d.mergedBy = true, recs[primary].at.seqBy
	d.errType, d.errMsg = r.errType, r.errMsg
	d.logger, d.logLevel = r.logger, r.levelText
	a.stack = a.stack[:0]
	d.truncated = false
	for i := range recs {
		if i > 0 {
			a.stack = append(a.stack, '\n')
		}
		a.stack = append(a.stack, recs[i].g.text...)
		d.truncated = d.truncated || recs[i].g.truncated
	}
	d.stack = a.stack
	if len(ev.ProxyError) == 0 {
		a.msg = appendAccessLine(a.msg[:0], d, ev)
		a.msg = append(a.msg, ' ')
		a.msg = appendSummary(a.msg, r.errType, r.errMsg, r.headline)
		d.message = a.msg
	}
}

// publishBackend publishes the backend document of the record g, whose
// header parsed as p, and returns its sequence number.
func (a *assembler) publishBackend(g *group, p *parsed, at *attribution) uint64 {
	var r record
	describe(&r, g, p)
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
		d.marked = a.marking.mark(at.session, r.level)
	} else {
		d.candidates = append(d.candidates, at.candidates[:at.n]...)
	}

	a.msg = appendRecordMessage(a.msg[:0], g, p, &r)
	if at.ownMarker {
		// The backend wrote the guide's marker itself, and it counted:
		// the policy decides whether this document carries one. (A
		// marker that did not count stays, and is defused as text.)
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
	documentsBackend.Inc()
	return a.publish()
}

// publish hands a.doc to the publisher as a new document, under the next
// _id, and returns the sequence number the _id ends with.
func (a *assembler) publish() uint64 {
	a.idSeq++
	a.send(a.idSeq, false)
	return a.idSeq
}

// replace hands a.doc to the publisher as the new version of the document
// published under docSeq.
func (a *assembler) replace(docSeq uint64) {
	replacements.Inc()
	a.send(docSeq, true)
}

// send adds a.doc to the Round; commit hands the Round on. A
// document of no session that the Sessionless policy does not keep is
// counted and goes nowhere; so does its replacement, which has the
// original's session and a level at least as high.
func (a *assembler) send(docSeq uint64, replace bool) {
	if a.doc.session == 0 && !a.sessionless.keeps(a.doc.level) {
		sessionlessSkipped.Inc()
		return
	}
	a.id = append(a.id[:0], a.idPrefix...)
	a.id = strconv.AppendUint(a.id, docSeq, 36)
	a.round.add(a.id, replace, &a.doc)
	if a.round.Len() >= maxRoundDocs {
		a.commit()
	}
}

// commit publishes the documents made since the last commit, in one call
// (group commit). The worker commits at the end of every round, so a
// document waits in memory no longer than the round that made it.
func (a *assembler) commit() {
	if a.round.Len() == 0 {
		return
	}
	refused, err := a.round.publish(a.pub)
	a.round.Reset()
	if refused > 0 {
		publishErrors.Add(refused)
		a.publishFailures += refused
		// One message per minute at most: a full spool fails every document.
		if a.now.Sub(a.lastFailureLog) >= time.Minute {
			a.log.Warn().Err(err).Int("failures", a.publishFailures).Msg("enrich: documents could not be published")
			a.lastFailureLog, a.publishFailures = a.now, 0
		}
	}
}
