package proxy

import "bytes"

// Access events keep the query string, but never the values of parameters
// that commonly carry secrets. A key is sensitive when, percent-decoded and
// in any case, it contains one of these words.
var sensitiveQueryWords = [...]string{"token", "password", "secret", "key", "auth", "session", "code"}

const redacted = "REDACTED"

// appendRedactedQuery appends rawQuery to dst with the value of every
// sensitive parameter replaced by REDACTED. Keys and the other values stay
// as sent (still percent-encoded).
func appendRedactedQuery(dst, rawQuery []byte) []byte {
	first := true
	for len(rawQuery) > 0 {
		var pair []byte
		if i := bytes.IndexByte(rawQuery, '&'); i >= 0 {
			pair, rawQuery = rawQuery[:i], rawQuery[i+1:]
		} else {
			pair, rawQuery = rawQuery, nil
		}
		if !first {
			dst = append(dst, '&')
		}
		first = false
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || !sensitiveQueryKey(pair[:eq]) {
			dst = append(dst, pair...)
			continue
		}
		dst = append(dst, pair[:eq+1]...)
		dst = append(dst, redacted...)
	}
	return dst
}

// sensitiveQueryKey decodes key (percent escapes and '+') into a stack
// buffer, lower-cases it and looks for the sensitive words. A key too long
// for the buffer counts as sensitive: better one value too few in a log.
func sensitiveQueryKey(key []byte) bool {
	var buf [128]byte
	n := 0
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
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	decoded := buf[:n]
	for _, w := range sensitiveQueryWords {
		if bytes.Contains(decoded, []byte(w)) {
			return true
		}
	}
	return false
}

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
