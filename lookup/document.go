package lookup

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// logDoc is one log document as lookup shows it: the source exactly as enrich
// made it (and Elasticsearch stores it), its _id when known, and the few
// fields lookup sorts, filters and draws by.
type logDoc struct {
	ID     string          // Elasticsearch _id
	Source json.RawMessage // the document, as indexed
	f      fields
}

// fields are the parts of a document that lookup reads. Documents may spell
// ECS names flat ("http.request.method") or nested ({"http":{"request":...}});
// Elasticsearch treats both alike, and so does parseFields.
type fields struct {
	time         time.Time
	level        string // error, warning, info or debug; "" when missing
	message      string
	session      string
	requestID    string
	method       string
	path         string
	status       int
	durationNS   int64
	dataset      string
	logger       string
	errorType    string
	errorMessage string
	stackTrace   string
}

// parseDoc reads src, a JSON object with the given _id.
func parseDoc(id string, src []byte) (logDoc, bool) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return logDoc{}, false
	}
	d := logDoc{ID: id, Source: src}
	f := &d.f
	f.time = parseTime(str(m, "utc_time"))
	if f.time.IsZero() {
		f.time = parseTime(str(m, "@timestamp"))
	}
	f.level = normalLevel(str(m, "level"))
	f.message = str(m, "message")
	f.session = str(m, "openReplaySession.id")
	f.requestID = str(m, "http.request.id")
	f.method = str(m, "http.request.method")
	f.path = str(m, "url.path")
	f.status = int(num(m, "http.response.status_code"))
	f.durationNS = num(m, "event.duration")
	f.dataset = str(m, "event.dataset")
	f.logger = str(m, "log.logger")
	f.errorType = str(m, "error.type")
	f.errorMessage = str(m, "error.message")
	f.stackTrace = str(m, "error.stack_trace")
	return d, true
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// value finds a dotted ECS name in m, whether stored flat, nested, or mixed.
func value(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if sub, ok := m[name[:i]].(map[string]any); ok {
			if v, ok := value(sub, name[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func str(m map[string]any, name string) string {
	v, _ := value(m, name)
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String() // e.g. a session id indexed as a number
	}
	return ""
}

func num(m map[string]any, name string) int64 {
	v, _ := value(m, name)
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil {
			return int64(f)
		}
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// levelRank orders OpenReplay's four levels; unknown levels count as info.
func levelRank(level string) int {
	switch level {
	case "debug":
		return 0
	case "warning":
		return 2
	case "error":
		return 3
	}
	return 1
}

// normalLevel maps the spellings a query or an odd document may use onto
// OpenReplay's four levels; it returns "" for anything else.
func normalLevel(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "error", "err", "fatal", "critical", "crit", "panic", "alert", "emergency":
		return "error"
	case "warning", "warn":
		return "warning"
	case "info", "information", "notice":
		return "info"
	case "debug", "trace":
		return "debug"
	}
	return ""
}

// isError says whether a document is shown as a failure.
func (f *fields) isError() bool {
	return f.level == "error" || f.status >= 500 || f.errorType != "" || f.stackTrace != ""
}

// isAccess says whether a document is the access record of a request.
func (f *fields) isAccess() bool {
	if f.dataset != "" {
		return f.dataset == "replaylink.access"
	}
	return f.method != "" && f.status != 0
}

// withID returns the document with its _id as the first key, which is how
// every document in a lookup answer shows it (Elasticsearch never allows an
// "_id" key inside a document, so it cannot clash).
func (d logDoc) withID() json.RawMessage {
	src := bytes.TrimSpace(d.Source)
	if d.ID == "" || len(src) < 2 || src[0] != '{' {
		return src
	}
	id, _ := json.Marshal(d.ID)
	out := make([]byte, 0, len(src)+len(id)+8)
	out = append(out, `{"_id":`...)
	out = append(out, id...)
	rest := bytes.TrimSpace(src[1:])
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
