package proxy

import (
	"bytes"
	"fmt"
	"strings"
)

// Access events keep the query string, but never the values of parameters
// that commonly carry secrets. A key is compared percent-decoded ('+' as a
// space) and in lower case, two ways:
//
//   - it contains one of sensitiveQueryWords anywhere (access_token,
//     X-Amz-Signature, clientSecret): long words, unlikely inside a harmless
//     name;
//   - one of its words is one of sensitiveQueryNames, or a name the user
//     added (Options.RedactQueryParams): short names that would match
//     harmless keys as substrings (sig in design, pass in compass, otp in
//     hotpot). The words of a key are its runs of letters and digits,
//     split at camelCase too: userPass and user_pass have the word pass. A
//     name that is not one word (api_sig) matches the whole key.
//
// The lists are also in the help of --redact-query-param; a test keeps
// them equal.
var (
	sensitiveQueryWords = [...]string{"token", "password", "passwd", "secret", "key", "auth", "session", "code",
		"credential", "signature", "jwt", "bearer", "assertion"}
	sensitiveQueryNames = [...]string{"pwd", "pass", "sig", "otp"}
)

// wordsByFirstByte indexes sensitiveQueryWords by their first byte, so a
// key is scanned once instead of once per word.
var wordsByFirstByte = func() (t [256][]string) {
	for _, w := range sensitiveQueryWords {
		t[w[0]] = append(t[w[0]], w)
	}
	return t
}()

const redacted = "REDACTED"

// maxQueryKey is the longest key compared; a longer one counts as
// sensitive: better one value too few in a log.
const maxQueryKey = 128

// queryRedactor holds the names compared as words or whole keys, the
// built-in ones and the user's, in lower case. It is read-only once built,
// so request goroutines share it.
type queryRedactor struct {
	names [][]byte
}

// newQueryRedactor adds the user's names (--redact-query-param) to the
// built-in ones.
func newQueryRedactor(extra []string) (*queryRedactor, error) {
	q := &queryRedactor{}
	for _, n := range sensitiveQueryNames {
		q.names = append(q.names, []byte(n))
	}
	for _, n := range extra {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || len(n) > maxQueryKey {
			return nil, fmt.Errorf("query parameter name %q to redact must have 1 to %d characters", n, maxQueryKey)
		}
		q.names = append(q.names, []byte(n))
	}
	return q, nil
}

// appendRedacted appends rawQuery to dst with the value of every sensitive
// parameter replaced by REDACTED. Pairs are separated by '&' or ';' (both
// are kept as sent); keys and the other values stay as sent (still
// percent-encoded).
func (q *queryRedactor) appendRedacted(dst, rawQuery []byte) []byte {
	for len(rawQuery) > 0 {
		pair := rawQuery
		var sep byte
		if i := bytes.IndexAny(rawQuery, "&;"); i >= 0 {
			pair, sep, rawQuery = rawQuery[:i], rawQuery[i], rawQuery[i+1:]
		} else {
			rawQuery = nil
		}
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || !q.sensitive(pair[:eq]) {
			dst = append(dst, pair...)
		} else {
			dst = append(dst, pair[:eq+1]...)
			dst = append(dst, redacted...)
		}
		if sep != 0 {
			dst = append(dst, sep)
		}
	}
	return dst
}

// sensitive decodes key into a stack buffer, lower-cases it, marks where
// its words start, and compares.
func (q *queryRedactor) sensitive(key []byte) bool {
	var buf [maxQueryKey]byte
	var start [maxQueryKey]bool // a word starts at buf[i]
	n := 0
	prevLower, prevAlnum := false, false
	for i := 0; i < len(key); i++ {
		if n == len(buf) {
			return true
		}
		c := key[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(key) && isHex(key[i+1]) && isHex(key[i+2]):
			c = unhex(key[i+1])<<4 | unhex(key[i+2])
			i += 2
		}
		upper := 'A' <= c && c <= 'Z'
		if upper {
			c += 'a' - 'A'
		}
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		start[n] = alnum && (!prevAlnum || upper && prevLower)
		prevLower, prevAlnum = alnum && !upper && 'a' <= c, alnum
		buf[n] = c
		n++
	}
	decoded := buf[:n]
	for i, c := range decoded {
		for _, w := range wordsByFirstByte[c] {
			if bytes.HasPrefix(decoded[i:], []byte(w)) {
				return true
			}
		}
	}
	for _, name := range q.names {
		if bytes.Equal(decoded, name) {
			return true
		}
	}
	for i := 0; i < n; i++ {
		if !start[i] {
			continue
		}
		j := i + 1
		for j < n && !start[j] && isAlnum(buf[j]) {
			j++
		}
		for _, name := range q.names {
			if bytes.Equal(buf[i:j], name) {
				return true
			}
		}
	}
	return false
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
