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
// `GET /api/cart 500 12.3 ms`). findRequest reads that name from a record's
// first line with a small scanner (no regular expressions: it runs for every
// record), and the Attributor uses it to tell apart the requests that were
// in flight when the line was printed.
//
// The scanner looks only for forms that describe the request being handled.
// An HTTP client logging its own outgoing call usually prints a full URL
// (httpx, OkHttp, Faraday) and is not read; urllib3's
// `http://host:80 "GET /x HTTP/1.1" 200 12` is recognised by the URL before
// the quote and skipped.

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

// Forms that name the path only, printed while the request is handled.
var pathPrefixes = [...]string{
	"Internal Server Error: /", // Django, 500
	"Not Found: /",             // Django, 404
	"Bad Request: /",           // Django, 400
}

// findRequest returns the request that line names, if it names one in a
// known form. line must be free of ANSI escapes.
func findRequest(line []byte) lineRequest {
	if len(line) > maxRequestScan {
		line = line[:maxRequestScan]
	}
	line = bytes.TrimRight(line, " \t\r\n")
	// Flask: "Exception on /api/cart [GET]", ending the line.
	if i := bytes.Index(line, []byte("Exception on /")); i >= 0 && wordStart(line, i) && len(line) > 0 && line[len(line)-1] == ']' {
		rest := line[i+len("Exception on "):]
		if j := bytes.LastIndex(rest, []byte(" [")); j > 0 {
			if m := parseMethod(rest[j+2 : len(rest)-1]); m != methodOther {
				return lineRequest{method: m, path: cutQuery(rest[:j])}
			}
		}
	}
	for _, prefix := range pathPrefixes {
		if i := bytes.Index(line, []byte(prefix)); i >= 0 && wordStart(line, i) {
			path := line[i+len(prefix)-1:]
			if j := bytes.IndexAny(path, " \t\""); j >= 0 {
				path = path[:j]
			}
			return lineRequest{path: cutQuery(path)}
		}
	}
	// Forms led by the method: the first upper-case word that is one.
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 'A' || c > 'Z' || !wordStart(line, i) {
			continue
		}
		j := i
		for j < len(line) && 'A' <= line[j] && line[j] <= 'Z' {
			j++
		}
		m := parseMethod(line[i:j])
		if m == methodOther || j >= len(line) || line[j] != ' ' {
			i = j
			continue
		}
		if r, ok := requestAt(line, i, j, m); ok {
			return r
		}
		i = j
	}
	return lineRequest{}
}

// requestAt reads the forms whose method word is line[i:j]:
//
//	"GET /api/cart?id=9 HTTP/1.1" 500     access lines (common log format, uvicorn)
//	GET /api/cart 500 12.345 ms - 20      morgan's dev format
//	Started GET "/api/cart" for 127.0.0.1 Rails; Gin's `| GET  "/api/cart"`
func requestAt(line []byte, i, j int, m httpMethod) (lineRequest, bool) {
	k := j
	for k < len(line) && line[k] == ' ' {
		k++
	}
	rest := line[k:]
	switch {
	case i > 0 && line[i-1] == '"':
		// A quoted request line, then the status.
		if k != j+1 || len(rest) == 0 || rest[0] != '/' || urlBefore(line[:i-1]) {
			return lineRequest{}, false
		}
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 || !bytes.HasPrefix(rest[sp+1:], []byte("HTTP/")) {
			return lineRequest{}, false
		}
		q := bytes.IndexByte(rest[sp:], '"')
		if q < 0 {
			return lineRequest{}, false
		}
		status, ok := statusAt(rest[sp+q+1:])
		if !ok {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(rest[:sp]), status: status}, true
	case len(rest) > 1 && rest[0] == '"' && rest[1] == '/':
		// A quoted path, ending the line or followed by a space.
		q := bytes.IndexByte(rest[1:], '"')
		if q < 0 || 1+q+1 < len(rest) && rest[1+q+1] != ' ' {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(rest[1 : 1+q])}, true
	case k == j+1 && len(rest) > 0 && rest[0] == '/':
		// A bare path, then the status.
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return lineRequest{}, false
		}
		status, ok := statusAt(rest[sp:])
		if !ok {
			return lineRequest{}, false
		}
		return lineRequest{method: m, path: cutQuery(rest[:sp]), status: status}, true
	}
	return lineRequest{}, false
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

// wordStart says whether line[i] starts a word: the line's start, or after
// a space, a tab or punctuation that log formats put before a field.
func wordStart(line []byte, i int) bool {
	if i == 0 {
		return true
	}
	switch line[i-1] {
	case ' ', '\t', '"', '[', '|', ':', ']', '(':
		return true
	}
	return false
}

// urlBefore says whether the word before a quote (line ends with it and a
// space) is a URL: urllib3 logs the requests it sends as
// `http://host:80 "GET /path HTTP/1.1" 200 12`.
func urlBefore(line []byte) bool {
	line = bytes.TrimRight(line, " ")
	word := line[bytes.LastIndexByte(line, ' ')+1:]
	return bytes.Contains(word, []byte("://"))
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
