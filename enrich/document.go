package enrich

import (
	"strconv"
	"time"
)

// document is one log document before encoding: every field replaylink may
// write, mostly as slices borrowed from the access event, line or group it
// describes. It is reused: reset before each document.
// docs/document-format.md is the reference of what each field means.
type document struct {
	time        time.Time
	level       level
	dataset     string // datasetAccess or datasetBackend
	tagAccess   bool
	tagBackend  bool
	marked      bool   // message starts with [openReplaySession.id=N]
	session     uint64 // 0: none
	source      string // how session was found
	attribution attributionLevel
	candidates  []uint64
	mergedBy    string // how a backend record folded into an access document was tied to its request
	message     []byte // the readable line, without the marker

	method, requestID, path, query []byte
	clientIP, userAgent, upstream  []byte
	status                         int
	bytesIn, bytesOut              int64
	duration                       time.Duration
	hasDuration                    bool
	body                           []byte // first bytes of a 5xx response
	traceID, spanID                []byte // lowercase hex

	logger, logLevel []byte
	errType, errMsg  []byte
	stack            []byte
	original         []byte // a structured line as the backend wrote it
	stream           string
	filePath         string
	truncated        bool            // a backend line was cut at --max-line-bytes
	cut              truncatedFields // client-sized fields cut at their caps (access.go)

	service, host string
}

// truncatedFields names the fields of an access document that were cut to
// their cap, one bit each, in the order of truncatedFieldNames.
type truncatedFields uint8

const (
	truncMessage truncatedFields = 1 << iota
	truncMethod
	truncPath
	truncQuery
	truncUserAgent
	truncBody
)

var truncatedFieldNames = [...]string{"message", "http.request.method", "url.path", "url.query", "user_agent.original", "http.response.body.content"}

const (
	datasetAccess  = "replaylink.access"
	datasetBackend = "replaylink.backend"
)

func (d *document) reset() {
	*d = document{candidates: d.candidates[:0]}
}

// appendDocument appends d as one JSON object. Fields without a value are
// left out; the order is fixed, so equal documents encode to equal bytes.
func appendDocument(dst []byte, d *document) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	ts := len(dst)
	dst = appendTime(dst, d.time)
	stamp := dst[ts:]
	dst = append(dst, `","utc_time":"`...)
	dst = append(dst, stamp...)
	dst = append(dst, `","message":"`...)
	if d.marked && d.session != 0 {
		dst = appendMarker(dst, d.session)
		dst = append(dst, ' ')
	}
	msg := len(dst)
	dst = appendEscaped(dst, d.message, true)
	defuseMarkers(dst[msg:])
	dst = append(dst, `","level":"`...)
	dst = append(dst, d.level.String()...)
	dst = append(dst, `","tags":[`...)
	n := 0
	for _, t := range [...]struct {
		on   bool
		name string
	}{{d.level == levelError, `"error"`}, {d.tagAccess, `"access"`}, {d.tagBackend, `"backend"`}} {
		if t.on {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, t.name...)
			n++
		}
	}
	dst = append(dst, ']')

	if d.session != 0 {
		dst = append(dst, `,"openReplaySession":{"id":"`...)
		dst = strconv.AppendUint(dst, d.session, 10)
		dst = append(dst, '"')
		if d.source != "" {
			dst = append(dst, `,"source":`...)
			dst = appendStr(dst, d.source)
		}
		dst = append(dst, '}')
	}

	dst = append(dst, `,"replaylink":{"attribution":"`...)
	dst = append(dst, d.attribution.String()...)
	dst = append(dst, '"')
	if len(d.candidates) > 0 {
		dst = append(dst, `,"candidates":[`...)
		for i, c := range d.candidates {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = strconv.AppendUint(dst, c, 10)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if d.mergedBy != "" {
		dst = append(dst, `,"merged_by":`...)
		dst = appendStr(dst, d.mergedBy)
	}
	if d.stream != "" {
		dst = append(dst, `,"stream":`...)
		dst = appendStr(dst, d.stream)
	}
	if len(d.upstream) > 0 {
		dst = append(dst, `,"upstream":`...)
		dst = appendString(dst, d.upstream)
	}
	if d.truncated || d.cut != 0 {
		dst = append(dst, `,"truncated":true`...)
	}
	if d.cut != 0 {
		dst = append(dst, `,"truncated_fields":[`...)
		n := 0
		for i, name := range truncatedFieldNames {
			if d.cut&(1<<i) == 0 {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendStr(dst, name)
			n++
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')

	dst = append(dst, `,"event":{"dataset":`...)
	dst = appendStr(dst, d.dataset)
	if d.hasDuration {
		dst = append(dst, `,"duration":`...)
		dst = strconv.AppendInt(dst, d.duration.Nanoseconds(), 10)
	}
	if len(d.original) > 0 {
		dst = append(dst, `,"original":`...)
		dst = appendString(dst, d.original)
	}
	dst = append(dst, '}')

	var open bool
	if len(d.method) > 0 || len(d.requestID) > 0 || d.bytesIn > 0 {
		dst = append(dst, `,"http":{"request":{`...)
		open = true
		var req bool
		dst = stringMember(dst, &req, "method", d.method)
		dst = stringMember(dst, &req, "id", d.requestID)
		if d.bytesIn > 0 {
			dst = intMember(dst, &req, "bytes", d.bytesIn)
		}
		dst = append(dst, '}')
	}
	if d.status != 0 || d.bytesOut > 0 || len(d.body) > 0 {
		if open {
			dst = append(dst, `,"response":{`...)
		} else {
			dst = append(dst, `,"http":{"response":{`...)
			open = true
		}
		var resp bool
		if d.status != 0 {
			dst = intMember(dst, &resp, "status_code", int64(d.status))
		}
		if d.bytesOut > 0 {
			dst = intMember(dst, &resp, "bytes", d.bytesOut)
		}
		if len(d.body) > 0 {
			dst = member(dst, &resp, "body")
			dst = append(dst, `{"content":`...)
			dst = appendText(dst, d.body)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if open {
		dst = append(dst, '}')
	}

	dst = object(dst, "url", "path", d.path, "query", d.query)
	dst = object(dst, "client", "ip", d.clientIP, "", nil)
	dst = object(dst, "user_agent", "original", d.userAgent, "", nil)
	dst = object(dst, "trace", "id", d.traceID, "", nil)
	dst = object(dst, "span", "id", d.spanID, "", nil)
	if d.service != "" {
		dst = append(dst, `,"service":{"name":`...)
		dst = appendStr(dst, d.service)
		dst = append(dst, '}')
	}
	if d.host != "" {
		dst = append(dst, `,"host":{"name":`...)
		dst = appendStr(dst, d.host)
		dst = append(dst, '}')
	}

	if len(d.logger) > 0 || len(d.logLevel) > 0 || d.filePath != "" {
		var lg bool
		dst = append(dst, `,"log":{`...)
		dst = textMember(dst, &lg, "logger", d.logger)
		dst = textMember(dst, &lg, "level", d.logLevel)
		if d.filePath != "" {
			dst = member(dst, &lg, "file")
			dst = append(dst, `{"path":`...)
			dst = appendStr(dst, d.filePath)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if len(d.errType) > 0 || len(d.errMsg) > 0 || len(d.stack) > 0 {
		var e bool
		dst = append(dst, `,"error":{`...)
		dst = textMember(dst, &e, "type", d.errType)
		dst = textMember(dst, &e, "message", d.errMsg)
		dst = textMember(dst, &e, "stack_trace", d.stack)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendMarker appends OpenReplay's marker, [openReplaySession.id=N].
func appendMarker(dst []byte, session uint64) []byte {
	dst = append(dst, "[openReplaySession.id="...)
	dst = strconv.AppendUint(dst, session, 10)
	return append(dst, ']')
}

// member starts the next member of an object whose '{' is written; open
// says whether a member came before.
func member(dst []byte, open *bool, key string) []byte {
	if *open {
		dst = append(dst, ',')
	}
	*open = true
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func stringMember(dst []byte, open *bool, key string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	return appendString(member(dst, open, key), v)
}

func textMember(dst []byte, open *bool, key string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	return appendText(member(dst, open, key), v)
}

func intMember(dst []byte, open *bool, key string, v int64) []byte {
	return strconv.AppendInt(member(dst, open, key), v, 10)
}

// object appends ,"name":{"k1":v1,"k2":v2} with the members that have a value.
func object(dst []byte, name, k1 string, v1 []byte, k2 string, v2 []byte) []byte {
	if len(v1) == 0 && len(v2) == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":{`...)
	var open bool
	dst = stringMember(dst, &open, k1, v1)
	dst = stringMember(dst, &open, k2, v2)
	return append(dst, '}')
}
