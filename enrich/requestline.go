package enrich

import (
	"bytes"
	"hash/maphash"
)

// Backends name the request they are handling in some lines: Flask's
// "Exception on /api/cart [GET]" before a traceback, Django's "Internal
// Server Error: /api/cart", Rails' `Started GET "/api/cart" for ...`, and
// the access line that werkzeug, gunicorn, uvicorn, Django, nginx or morgan
// print once the response is sent (`"GET /api/cart HTTP/1.1" 500 -`,
// `GET /api/cart 500 12.3 ms - 20`). findRequest reads that name from a
// record's first line with a small scanner (no regular expressions: it runs
// for every record), and the Attributor uses it to tell apart the requests
// that may have printed the line.
//
// A name is read only where a server or framework writes it, never
// anywhere in a message: backends log what users type, and a user who types
// `"GET /api/slow HTTP/1.1" 200` into a search box must not name another
// user's request. Each form is read whole, from where it opens the message
// (after a log prefix that isLogPrefix accepts: the same rule as for the
// guide's marker) to the end of the line, which must be what the form ends
// with (the status and its known tail; a closing bracket; the path).
// Access lines are read after their own prefix instead: the client address
// and the bracketed time that servers put before the request line.
//
// An HTTP client logging its own outgoing call usually prints a full URL
// (httpx, OkHttp, Faraday) and is not read; urllib3's
// `http://host:80 "GET /x HTTP/1.1" 200 12` has no access line's prefix.
//
// What the scanner reads is a claim the Attributor checks: a name only
// narrows the requests that may have printed the line (see
// Attributor.window), so even a line a user controls whole can only pick
// among requests that were in flight when it was printed.

// httpMethod is a request method as a small number, so the Attributor keeps
// it without copying bytes.
type httpMethod uint8

const (
	methodUnknown httpMethod = iota // a request: not told; a line: names no method
	methodGET
	methodHEAD
	methodPOST
	methodPUT
	methodDELETE
	methodPATCH
	methodOPTIONS
	methodCONNECT
	methodTRACE
	methodOther // a request's method outside the list; a line never names one
)

func parseMethod(b []byte) httpMethod {
	switch string(b) {
	case "GET":
		return methodGET
	case "HEAD":
		return methodHEAD
	case "POST":
		return methodPOST
	case "PUT":
		return methodPUT
	case "DELETE":
		return methodDELETE
	case "PATCH":
		return methodPATCH
	case "OPTIONS":
		return methodOPTIONS
	case "CONNECT":
		return methodCONNECT
	case "TRACE":
		return methodTRACE
	}
	return methodOther
}

// requestMethod is the method of a request the proxy saw.
func requestMethod(b []byte) httpMethod {
	if len(b) == 0 {
		return methodUnknown
	}
	return parseMethod(b)
}

// lineRequest is the request a backend line names.
type lineRequest struct {
	method httpMethod // methodUnknown: the form names only the path
	path   []byte     // as written, without the query; nil: no request named
	status int        // the status an access line reports; 0: not an access line
}

func (r *lineRequest) found() bool { return r.path != nil }

// maxRequestScan bounds how much of a line the scanner reads.
const maxRequestScan = 4096

// Forms that name the path only, printed while the request is handled;
// the path ends the line.
var pathPrefixes = [...]string{
	"Internal Server Error: /", // Django, 500
	"Not Found: /",             // Django, 404
	"Bad Request: /",           // Django, 400
}

// findRequest returns the request that line names, if the line is one of
// the known forms (see above). line must be free of ANSI escapes.
func findRequest(line []byte) lineRequest {
	if len(line) > maxRequestScan {
		return lineRequest{} // no server writes a line this long about a request
	}
	line = bytes.TrimRight(line, " \t\r\n")
	// Flask: "Exception on /api/cart [GET]", the whole message.
	if i := bytes.Index(line, []byte("Exception on /")); i >= 0 && opensMessage(line[:i]) && line[len(line)-1] == ']' {
		rest := line[i+len("Exception on ") : len(line)-1]
		if j := bytes.LastIndex(rest, []byte(" [")); j > 0 {
			if m := parseMethod(rest[j+2:]); m != methodOther {
				return lineRequest{method: m, path: cutQuery(rest[:j])}
			}
		}
		return lineRequest{}
	}
	for _, prefix := range pathPrefixes {
		if i := bytes.Index(line, []byte(prefix)); i >= 0 && opensMessage(line[:i]) {
			path := line[i+len(prefix)-1:]
			if bytes.ContainsAny(path, " \t\"") {
				return lineRequest{}
			}
			return lineRequest{path: cutQuery(path)}
		}
	}
	if r, ok := accessLine(line); ok {
		return r
	}
	if r, ok := messageRequest(line); ok {
		return r
	}
	return lineRequest{}
}

// accessLine reads an access line: the request line in quotes, after the
// client address and time, then the status and its tail.
//
//	127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /a?b=1 HTTP/1.1" 500 -    werkzeug, gunicorn, nginx, morgan combined
//	[24/Nov/2026 23:53:42] "GET /a HTTP/1.1" 500 145                     Django runserver
//	INFO:     127.0.0.1:54321 - "GET /a HTTP/1.1" 404 Not Found           uvicorn
func accessLine(line []byte) (lineRequest, bool) {
	q := bytes.IndexByte(line, '"')
	if q < 0 || !accessPrefix(line[:q]) {
		return lineRequest{}, false
	}
	rest := line[q+1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return lineRequest{}, false
	}
	m := parseMethod(rest[:sp])
	rest = rest[sp+1:]
	end := bytes.IndexByte(rest, '"')
	if m == methodOther || end < 0 || len(rest) == 0 || rest[0] != '/' {
		return lineRequest{}, false
	}
	target := rest[:end]
	sp = bytes.LastIndexByte(target, ' ')
	if sp < 0 || !bytes.HasPrefix(target[sp+1:], []byte("HTTP/")) {
		return lineRequest{}, false
	}
	status, ok := statusAt(rest[end+1:])
	if !ok || !accessTail(rest[end+1+4:]) {
		return lineRequest{}, false
	}
	return lineRequest{method: m, path: cutQuery(target[:sp]), status: status}, true
}

// accessPrefix says whether p, what comes before an access line's opening
// quote, is one of the prefixes servers write: a log prefix, then the
// client address with the ident and user fields and the bracketed time
// (common log format), the time alone (Django), or the address:port and a
// dash (uvicorn).
func accessPrefix(p []byte) bool {
	if len(p) < 2 || p[len(p)-1] != ' ' {
		return false
	}
	p = p[:len(p)-1]
	if p[len(p)-1] == ']' {
		open := bytes.LastIndexByte(p, '[')
		if open < 0 || !isLogTime(p[open+1:len(p)-1]) {
			return false
		}
		p = p[:open]
		if len(p) == 0 || isLogPrefix(p) && !endsWithAddress(p) {
			return true // Django: the time alone
		}
		// "ADDR IDENT USER ": the identity fields are "-", or a user name.
		f := fieldsFromEnd(p, 3)
		return f.ok && string(f.w[1]) == "-" && isName(f.w[2]) && addressAfterPrefix(p, f)
	}
	// uvicorn: "ADDR -"
	f := fieldsFromEnd(p[:len(p)+1], 2) // p's trailing space is still there
	return f.ok && string(f.w[1]) == "-" && addressAfterPrefix(p, f)
}

// addressAfterPrefix says whether f's first field is a client address after
// a log prefix. Python's default format glues the message to the prefix
// ("INFO:werkzeug:127.0.0.1 - - ..."), so the address may be the end of
// the field, after a colon.
func addressAfterPrefix(p []byte, f words) bool {
	if isAddress(f.w[0]) && isLogPrefix(f.before) {
		return true
	}
	for k, c := range f.w[0] {
		if c == ':' && isAddress(f.w[0][k+1:]) && isLogPrefix(p[:len(f.before)+k+1]) {
			return true
		}
	}
	return false
}

// accessTail says whether b, what follows an access line's status, is what
// servers write there: nothing; a reason phrase (uvicorn); or the size ("-"
// or digits), then quoted fields and numbers (referrer, user agent,
// timings).
func accessTail(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ' ' || len(b) < 2 {
		return false
	}
	b = b[1:]
	if 'A' <= b[0] && b[0] <= 'Z' { // a reason phrase: "Not Found", "I'm a teapot"
		for _, c := range b {
			if !isASCIILetter(c) && c != ' ' && c != '-' && c != '\'' {
				return false
			}
		}
		return true
	}
	for first := true; len(b) > 0; first = false {
		var n int
		switch {
		case b[0] == '"' && !first:
			n = quotedLen(b)
		case b[0] == '-':
			n = 1
		default:
			for n < len(b) && (isDigit(b[n]) || n > 0 && b[n] == '.') {
				n++
			}
		}
		if n == 0 || n < len(b) && b[n] != ' ' {
			return false
		}
		b = b[min(n+1, len(b)):]
	}
	return true
}

// quotedLen returns the length of the quoted field that opens b, with its
// quotes (escaped quotes inside), or 0.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return 0
}

// messageRequest reads the forms that open the message with the method:
//
//	GET /api/cart 500 12.345 ms - 20               morgan's dev format
//	Started GET "/api/cart" for 127.0.0.1 at ...   Rails
//	[GIN] ... | 127.0.0.1 | GET      "/api/cart"    Gin
func messageRequest(line []byte) (lineRequest, bool) {
	if i := bytes.Index(line, []byte("Started ")); i >= 0 && opensMessage(line[:i]) {
		rest := line[i+len("Started "):]
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 || len(rest) < sp+3 || rest[sp+1] != '"' || rest[sp+2] != '/' {
			return lineRequest{}, false
		}
		m := parseMethod(rest[:sp])
		path := rest[sp+2:]
		q := bytes.IndexByte(path, '"')
		if m == methodOther || q < 0 || q+1 < len(path) && !bytes.HasPrefix(path[q+1:], []byte(" for ")) {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(path[:q])}, true
	}
	if bytes.HasPrefix(line, []byte("[GIN] ")) {
		bar := bytes.LastIndex(line, []byte("| "))
		if bar < 0 {
			return lineRequest{}, false
		}
		rest := line[bar+2:]
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return lineRequest{}, false
		}
		m := parseMethod(rest[:sp])
		path := bytes.TrimLeft(rest[sp:], " ")
		if m == methodOther || len(path) < 3 || path[0] != '"' || path[1] != '/' || path[len(path)-1] != '"' {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(path[1 : len(path)-1])}, true
	}
	// morgan dev: the method opens the message.
	for start := 0; start < len(line); start++ { // the method's start: after the log prefix
		if start > 0 && line[start-1] != ' ' && line[start-1] != ':' && line[start-1] != '\t' {
			continue
		}
		j := start
		for j < len(line) && 'A' <= line[j] && line[j] <= 'Z' {
			j++
		}
		m := parseMethod(line[start:j])
		if m == methodOther || j+1 >= len(line) || line[j] != ' ' || line[j+1] != '/' || !opensMessage(line[:start]) {
			continue
		}
		rest := line[j+1:]
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return lineRequest{}, false
		}
		status, ok := statusAt(rest[sp:])
		if !ok || !morganTail(rest[sp+4:]) {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(rest[:sp]), status: status}, true
	}
	return lineRequest{}, false
}

// morganTail says whether b is the end of morgan's dev format after the
// status: " 12.345 ms - 20" (the size may be "-").
func morganTail(b []byte) bool {
	c := cursor{b: b}
	if !c.lit(" ") || c.run(isDecimalByte) == 0 || !c.lit(" ms - ") {
		return false
	}
	return c.lit("-") && c.end() || c.run(isDigit) > 0 && c.end()
}

func isDecimalByte(c byte) bool { return isDigit(c) || c == '.' }

// opensMessage says whether p, the text before a form on its line, is a
// log prefix, with tags in brackets after it: Rails' tagged logging puts
// the request id there ("INFO -- : [8f5e…] Started GET …"), a backend
// following OpenReplay's guide its marker ("ERROR:app:[openReplaySession.id=N] Exception on …").
func opensMessage(p []byte) bool {
	for k := 0; k < 4 && len(p) > 2 && p[len(p)-1] == ' ' && p[len(p)-2] == ']'; k++ {
		open := bytes.LastIndexByte(p[:len(p)-2], '[')
		if open < 0 || open > 0 && p[open-1] != ' ' && p[open-1] != ':' {
			break
		}
		if isLogPrefix(p) {
			return true
		}
		p = p[:open]
	}
	return isLogPrefix(p)
}

// words are the last fields of a text, split at single spaces.
type words struct {
	w      [3][]byte
	before []byte // what comes before them, with its trailing space
	ok     bool
}

// fieldsFromEnd splits the last n (at most 3) fields of p, which ends with
// a space, from what comes before them.
func fieldsFromEnd(p []byte, n int) (f words) {
	if len(p) == 0 || p[len(p)-1] != ' ' {
		return f
	}
	end := len(p) - 1
	for k := n - 1; k >= 0; k-- {
		start := bytes.LastIndexByte(p[:end], ' ') + 1
		if start == end {
			return f
		}
		f.w[k] = p[start:end]
		end = start - 1
		if k > 0 && end < 0 {
			return f
		}
	}
	f.before = p[:end+1]
	f.ok = true
	return f
}

// isAddress says whether w is a client address as servers log it: an IPv4
// or IPv6 address, with a port or an IPv6 zone, or "localhost".
func isAddress(w []byte) bool {
	if string(w) == "localhost" || bytes.HasPrefix(w, []byte("localhost:")) {
		return true
	}
	digits := false
	for _, c := range w {
		switch {
		case isDigit(c):
			digits = true
		case isHexByte(c), c == '.', c == ':', c == '[', c == ']', c == '%':
		default:
			return false
		}
	}
	return digits || len(w) > 1 && bytes.Contains(w, []byte("::"))
}

// endsWithAddress says whether the prefix p ends with an address field: a
// common log format line without its ident and user fields is no form.
func endsWithAddress(p []byte) bool {
	f := fieldsFromEnd(p, 1)
	return f.ok && isAddress(f.w[0])
}

// isName says whether w is a user field: no quotes or brackets.
func isName(w []byte) bool {
	return len(w) > 0 && !bytes.ContainsAny(w, "\"[]")
}

// isLogTime says whether b, inside brackets, is a time as access logs
// write it: "24/Nov/2026 23:53:42", "01/May/2024:10:00:00 +0000".
func isLogTime(b []byte) bool {
	digits := 0
	for _, c := range b {
		switch {
		case isDigit(c):
			digits++
		case isASCIILetter(c), c == '/', c == ':', c == '-', c == '+', c == ' ', c == '.', c == ',':
		default:
			return false
		}
	}
	return digits >= 6
}

// statusAt reads " NNN" (an HTTP status, then the end or a space) at the
// start of b.
func statusAt(b []byte) (int, bool) {
	if len(b) < 4 || b[0] != ' ' || len(b) > 4 && b[4] != ' ' {
		return 0, false
	}
	n := 0
	for _, c := range b[1:4] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	if n < 100 || n > 599 {
		return 0, false
	}
	return n, true
}

func cutQuery(path []byte) []byte {
	if i := bytes.IndexAny(path, "?#"); i >= 0 {
		return path[:i]
	}
	return path
}

// pathKey hashes a path the way the backend and the proxy may both write
// it: percent-escapes decoded (werkzeug and Flask print decoded paths, the
// proxy has them as sent), the query cut. 0 is never returned: it means
// "not known".
func pathKey(seed maphash.Seed, path []byte) uint64 {
	path = cutQuery(path)
	var h maphash.Hash
	h.SetSeed(seed)
	for len(path) > 0 {
		i := bytes.IndexByte(path, '%')
		if i < 0 {
			h.Write(path)
			break
		}
		h.Write(path[:i])
		if i+2 < len(path) && isHexByte(path[i+1]) && isHexByte(path[i+2]) {
			h.WriteByte(unhex(path[i+1])<<4 | unhex(path[i+2]))
			path = path[i+3:]
		} else {
			h.WriteByte('%')
			path = path[i+1:]
		}
	}
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
