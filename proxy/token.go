package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"math"
	"strconv"
	"sync"
)

// OpenReplay's session token, as its tracker sends it in
// X-OpenReplay-Session-Token (backend/pkg/token in OpenReplay):
//
//	base36(sessionID) "." base36(delay) "." base36(expiry unix ms) "." base58(HMAC-SHA256(secret, first three parts joined by "."))
//
// base36 is strconv's (lower case digits, a leading '-' for negative delay
// and expiry); base58 uses the bitcoin alphabet. Expiry is not enforced: the
// token only labels requests with a session OpenReplay issued, and a stale
// token still names that session.

// maxTokenLen bounds what is parsed; real tokens are about 70 bytes.
const maxTokenLen = 256

// sessionToken is a token split into its parts. body and sig point into the
// parsed bytes.
type sessionToken struct {
	id     uint64
	delay  int64
	expiry int64
	body   []byte // the signed part: id.delay.expiry
	sig    []byte // base58 signature
}

// parseSessionToken checks the token's shape: four dot-separated parts, a
// non-zero id, base36 numbers and a base58 signature of exactly 32 bytes.
// It does not verify the signature.
func parseSessionToken(b []byte) (t sessionToken, ok bool) {
	if len(b) == 0 || len(b) > maxTokenLen {
		return t, false
	}
	i1 := bytes.IndexByte(b, '.')
	if i1 < 0 {
		return t, false
	}
	i2 := bytes.IndexByte(b[i1+1:], '.') + i1 + 1
	if i2 <= i1 {
		return t, false
	}
	i3 := bytes.IndexByte(b[i2+1:], '.') + i2 + 1
	if i3 <= i2 || bytes.IndexByte(b[i3+1:], '.') >= 0 {
		return t, false
	}
	if t.id, ok = parseBase36Uint(b[:i1]); !ok || t.id == 0 {
		return t, false
	}
	if t.delay, ok = parseBase36Int(b[i1+1 : i2]); !ok {
		return t, false
	}
	if t.expiry, ok = parseBase36Int(b[i2+1 : i3]); !ok {
		return t, false
	}
	t.body, t.sig = b[:i3], b[i3+1:]
	var raw [32]byte
	if n, ok := decodeBase58(raw[:], t.sig); !ok || n != len(raw) {
		return t, false
	}
	return t, true
}

// tokenVerifier checks token signatures with one secret. It keeps its HMAC
// states in a pool so verifying does not allocate.
type tokenVerifier struct {
	macs sync.Pool // *tokenMAC
}

type tokenMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
	enc [48]byte
}

func newTokenVerifier(secret string) *tokenVerifier {
	key := []byte(secret)
	v := &tokenVerifier{}
	v.macs.New = func() any { return &tokenMAC{h: hmac.New(sha256.New, key)} }
	return v
}

// verify reports whether t's signature is the HMAC of its body.
func (v *tokenVerifier) verify(t *sessionToken) bool {
	m := v.macs.Get().(*tokenMAC)
	m.h.Reset()
	m.h.Write(t.body)
	want := appendBase58(m.enc[:0], m.h.Sum(m.sum[:0]))
	ok := subtle.ConstantTimeCompare(want, t.sig) == 1
	v.macs.Put(m)
	return ok
}

// SignSessionToken makes the token OpenReplay's backend would issue for a
// session, so tests and tools can produce tokens that verify with secret.
func SignSessionToken(secret string, sessionID uint64, delay, expiryMs int64) string {
	body := strconv.FormatUint(sessionID, 36) + "." + strconv.FormatInt(delay, 36) + "." + strconv.FormatInt(expiryMs, 36)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return body + "." + string(appendBase58(nil, mac.Sum(nil)))
}

func base36Digit(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'z':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'Z':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// parseBase36Uint parses what strconv.FormatUint(v, 36) writes.
func parseBase36Uint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 13 { // 36^13 > 2^64
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d, ok := base36Digit(c)
		if !ok || v > (math.MaxUint64-d)/36 {
			return 0, false
		}
		v = v*36 + d
	}
	return v, true
}

// parseBase36Int parses what strconv.FormatInt(v, 36) writes.
func parseBase36Int(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseBase36Uint(b)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var base58Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		t[base58Alphabet[i]] = int8(i)
	}
	return t
}()

// appendBase58 appends the bitcoin base58 encoding of src (at most 64 bytes)
// to dst: one '1' per leading zero byte, then the number in base 58.
func appendBase58(dst, src []byte) []byte {
	zeros := 0
	for zeros < len(src) && src[zeros] == 0 {
		zeros++
	}
	var buf [90]byte // 64 bytes need at most 88 digits
	size := (len(src)-zeros)*138/100 + 1
	if size > len(buf) {
		panic("appendBase58: input longer than 64 bytes")
	}
	digits := buf[len(buf)-size:]
	high := size - 1
	for _, b := range src[zeros:] {
		carry := int(b)
		j := size - 1
		for ; j > high || carry != 0; j-- {
			carry += 256 * int(digits[j])
			digits[j] = byte(carry % 58)
			carry /= 58
		}
		high = j
	}
	i := 0
	for i < size && digits[i] == 0 {
		i++
	}
	for range zeros {
		dst = append(dst, '1')
	}
	for _, d := range digits[i:] {
		dst = append(dst, base58Alphabet[d])
	}
	return dst
}

// decodeBase58 decodes s into the end of dst and returns how many bytes the
// value takes, or false when s has a character outside the alphabet or the
// value does not fit dst. The bytes are right-aligned: dst[len(dst)-n:].
func decodeBase58(dst []byte, s []byte) (n int, ok bool) {
	clear(dst)
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	used := 0 // significant bytes at the end of dst
	for _, c := range s[zeros:] {
		d := base58Index[c]
		if d < 0 {
			return 0, false
		}
		carry := int(d)
		for j := len(dst) - 1; j >= len(dst)-used || carry != 0; j-- {
			if j < 0 {
				return 0, false
			}
			carry += 58 * int(dst[j])
			dst[j] = byte(carry)
			carry >>= 8
			if len(dst)-j > used {
				used = len(dst) - j
			}
		}
	}
	for used > 0 && dst[len(dst)-used] == 0 {
		used--
	}
	if zeros+used > len(dst) {
		return 0, false
	}
	return zeros + used, true
}
