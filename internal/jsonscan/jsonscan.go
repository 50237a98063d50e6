// Package jsonscan is the JSON scanning core below the packages that read
// documents without encoding/json on a hot path: the memory store finds a
// document's session and request ids with Fields, and ship's bulk answer
// reader (scanIndexed) and enrich's line parser skip whitespace with
// SkipSpace. It allocates nothing and never recurses deeper than 32 levels.
//
// It holds only what those readers share exactly. enrich's line parser
// (enrich/jsonread.go) walks differently on purpose: it lowercases paths,
// records arrays and bare words, and unescapes logfmt's escapes too, so it
// keeps its own walk.
package jsonscan

import (
	"bytes"
	"encoding/json"
)

// Fields walks the JSON object doc once, without allocating, and calls
// found with the index in paths of each dotted path it finds whose value is
// a string or a number, and that value (a string decoded, a number as
// written). A path matches nested objects ({"http":{"request":{"id":..}}})
// and dotted keys ({"http.request.id":..}) alike, as Elasticsearch does.
// The walk stops once every path was found (the first occurrence counts:
// Elasticsearch refuses duplicate keys anyway) or at malformed JSON; what
// was found until then counts. At most 64 paths.
func Fields(doc []byte, paths []string, found func(i int, value []byte)) {
	s := scanner{b: doc, paths: paths, found: found, missing: uint64(1)<<len(paths) - 1}
	s.space()
	if s.peek() == '{' {
		var buf [128]byte
		s.object(buf[:0], 0)
	}
}

// scanner is the state of one Fields walk.
type scanner struct {
	b       []byte
	i       int
	paths   []string
	found   func(int, []byte)
	missing uint64 // bit i: paths[i] not found yet
}

const maxDepth = 32

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) space() { s.i = SkipSpace(s.b, s.i) }

// SkipSpace returns the index of the first byte of b from i on that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// object scans the object at s.i, whose keys extend path.
func (s *scanner) object(path []byte, depth int) bool {
	s.i++ // '{'
	for {
		s.space()
		switch s.peek() {
		case '}':
			s.i++
			return true
		case ',':
			s.i++
			continue
		case '"':
		default:
			return false
		}
		key, escaped, ok := s.str()
		if !ok {
			return false
		}
		s.space()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.space()
		p := path
		if len(p) > 0 {
			p = append(p, '.')
		}
		p = append(p, key...)
		match, prefix := -1, false
		if !escaped { // the paths we look for need no escapes
			for i, w := range s.paths {
				if s.missing&(1<<i) == 0 {
					continue
				}
				if w == string(p) {
					match = i
				} else if len(w) > len(p) && w[len(p)] == '.' && w[:len(p)] == string(p) {
					prefix = true
				}
			}
		}
		switch c := s.peek(); {
		case match >= 0 && c == '"':
			v, esc, ok := s.str()
			if !ok {
				return false
			}
			if esc {
				var dec string
				if json.Unmarshal(s.b[s.i-len(v)-2:s.i], &dec) != nil {
					return false
				}
				v = []byte(dec)
			}
			if !s.report(match, v) {
				return false
			}
		case match >= 0 && (c == '-' || c >= '0' && c <= '9'):
			start := s.i
			if !s.skip(depth) || !s.report(match, s.b[start:s.i]) {
				return false
			}
		case prefix && c == '{' && depth < maxDepth:
			if !s.object(p, depth+1) {
				return false
			}
		default:
			if !s.skip(depth) {
				return false
			}
		}
	}
}

// report passes a value on, and says whether to go on scanning.
func (s *scanner) report(i int, v []byte) bool {
	s.found(i, v)
	s.missing &^= 1 << i
	return s.missing != 0
}

// str scans the string at s.i and returns its raw contents, and whether
// they hold escapes.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	s.i++ // '"'
	start := s.i
	for {
		j := bytes.IndexByte(s.b[s.i:], '"')
		if j < 0 {
			return nil, false, false
		}
		end := s.i + j
		s.i = end + 1
		backslashes := 0
		for k := end - 1; k >= start && s.b[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 0 { // not an escaped quote
			raw = s.b[start:end]
			return raw, bytes.IndexByte(raw, '\\') >= 0, true
		}
	}
}

// skip passes over the value at s.i.
func (s *scanner) skip(depth int) bool {
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		if depth >= maxDepth {
			return false
		}
		s.i++
		for {
			s.space()
			switch s.peek() {
			case '}', ']':
				s.i++
				return true
			case ',', ':':
				s.i++
			case 0:
				return false
			default:
				if !s.skip(depth + 1) {
					return false
				}
			}
		}
	case 0:
		return false
	default: // number, true, false, null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}
