// Package openreplaystub is a small stand-in for OpenReplay's ingest endpoint,
// for demos and the end-to-end test where no OpenReplay runs. It answers the
// tracker (@openreplay/tracker 19) the way OpenReplay's HTTP service does:
//
//	POST {ingest}/v1/web/start   a new session: sessionID, a signed token, delay, ...
//	POST {ingest}/v1/web/i       a recording batch (Authorization: Bearer <token>)
//	GET  {ingest}/v1/web/tags    the project's watched tags (none)
//	POST {ingest}/v1/web/images  canvas frames (accepted, dropped)
//
// Tokens have OpenReplay's format, signed with Secret, so replaylink given the
// same secret (REPLAYLINK_OPENREPLAY_TOKEN_SECRET) verifies them. The signer
// here is written independently of package proxy on purpose: the end-to-end
// test then checks that replaylink accepts tokens made the way OpenReplay
// makes them, not just its own.
//
// Batches are counted, never decoded: nothing here replays a session.
package openreplaystub

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenTTL is how long a session token stays valid, as in OpenReplay.
const TokenTTL = 24 * time.Hour

// Server is an http.Handler; the zero value is not usable, use New.
type Server struct {
	secret []byte
	now    func() time.Time

	mu       sync.Mutex
	sessions map[uint64]*Session // guarded by mu
}

// Session is what the stub knows of one tracker session.
type Session struct {
	ID         uint64
	Token      string
	ProjectKey string // as sent by the tracker's start request
	Started    time.Time
	Batches    int   // recording batches accepted
	BatchBytes int64 // their total size
}

// New returns a stub signing tokens with secret.
func New(secret string) *Server {
	return &Server{secret: []byte(secret), now: time.Now, sessions: map[uint64]*Session{}}
}

// Session returns a copy of what is known of session id.
func (s *Server) Session(id uint64) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok {
		return Session{}, false
	}
	return *ss, true
}

// Sessions returns copies of all sessions started so far.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		out = append(out, *ss)
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The page is on another origin: the tracker's JSON start request and its
	// batches (Authorization, DataType headers) are preflighted.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, DataType, Content-Encoding")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/v1/web/start") && r.Method == http.MethodPost:
		s.start(w, r)
	case strings.HasSuffix(p, "/v1/web/i") && r.Method == http.MethodPost:
		s.batch(w, r)
	case strings.HasSuffix(p, "/v1/web/tags") && r.Method == http.MethodGet:
		if _, err := s.authorized(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		writeJSON(w, map[string]any{"tags": []any{}})
	case strings.HasSuffix(p, "/v1/web/images") && r.Method == http.MethodPost:
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "openreplaystub: no such endpoint: "+r.Method+" "+p, http.StatusNotFound)
	}
}

// startRequest holds the fields of the tracker's start request that matter here.
type startRequest struct {
	ProjectKey string `json:"projectKey"`
	Timestamp  int64  `json:"timestamp"` // the browser's clock, ms
	Token      string `json:"token"`     // set when a tab continues a session
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	var req startRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "openreplaystub: start request is not JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.ProjectKey == "" {
		http.Error(w, "openreplaystub: start request without projectKey", http.StatusBadRequest)
		return
	}
	now := s.now()
	s.mu.Lock()
	var ss *Session
	if id, err := s.verify(req.Token); err == nil {
		ss = s.sessions[id] // a new tab of a known session: continue it
	}
	if ss == nil {
		id := newSessionID()
		// OpenReplay's delay is the server's clock minus the browser's.
		delay := now.UnixMilli() - req.Timestamp
		ss = &Session{
			ID: id, ProjectKey: req.ProjectKey, Started: now,
			Token: SignToken(string(s.secret), id, delay, now.Add(TokenTTL)),
		}
		s.sessions[id] = ss
	}
	resp := map[string]any{
		"token":           ss.Token,
		"sessionID":       strconv.FormatUint(ss.ID, 10),
		"userUUID":        "00000000-0000-4000-8000-" + strconv.FormatUint(ss.ID%1e12, 10),
		"projectID":       "1",
		"delay":           ss.Started.UnixMilli() - req.Timestamp,
		"startTimestamp":  ss.Started.UnixMilli(),
		"beaconSizeLimit": 1 << 20,
		"userBrowser":     "",
		"userCountry":     "",
		"userOS":          "",
		"userDevice":      "",
	}
	s.mu.Unlock()
	writeJSON(w, resp)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	id, err := s.authorized(r)
	if err != nil {
		// 401 makes the tracker ask for a new session, as with OpenReplay.
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
	s.mu.Lock()
	if ss := s.sessions[id]; ss != nil {
		ss.Batches++
		ss.BatchBytes += n
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) authorized(r *http.Request) (uint64, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return 0, errors.New("openreplaystub: missing Authorization: Bearer <session token>")
	}
	return s.verify(tok)
}

// verify checks a token's signature and expiry and returns its session id.
func (s *Server) verify(token string) (uint64, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		return 0, errors.New("openreplaystub: token has not 4 parts")
	}
	payload := parts[0] + "." + parts[1] + "." + parts[2]
	if !hmac.Equal([]byte(parts[3]), []byte(base58(mac(string(s.secret), payload)))) {
		return 0, errors.New("openreplaystub: token signature does not match")
	}
	exp, err := strconv.ParseInt(parts[2], 36, 64)
	if err != nil || s.now().UnixMilli() > exp {
		return 0, errors.New("openreplaystub: token expired")
	}
	return strconv.ParseUint(parts[0], 36, 64)
}

// SignToken makes a session token the way OpenReplay does:
// base36(id) "." base36(delay ms) "." base36(expiry, Unix ms) "." base58(HMAC-SHA256(secret, the first three joined by ".")).
func SignToken(secret string, id uint64, delayMillis int64, expiry time.Time) string {
	payload := strconv.FormatUint(id, 36) + "." + strconv.FormatInt(delayMillis, 36) + "." + strconv.FormatInt(expiry.UnixMilli(), 36)
	return payload + "." + base58(mac(secret, payload))
}

func mac(secret, payload string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz" // bitcoin's

// base58 encodes b in the bitcoin alphabet, a leading '1' per leading zero byte.
func base58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	radix, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, base58Alphabet[0])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// newSessionID returns a random 19-digit id, like OpenReplay's.
func newSessionID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return 1e18 + binary.LittleEndian.Uint64(b[:])%(8e18)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
