package openreplaystub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/proxy"
)

func TestBase58(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte("hello world"), "StV1DL6CwTryKyV"},
		{[]byte{0, 0, 0x28, 0x7f, 0xb4, 0xcd}, "11233QC4"}, // leading zero bytes become '1's
		{[]byte{0}, "1"},
		{nil, ""},
	} {
		if got := base58(tc.in); got != tc.want {
			t.Errorf("base58(%x) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSignToken(t *testing.T) {
	exp := time.UnixMilli(1_800_000_000_000)
	tok := SignToken("s3cret", 7_345_678_901_234_567_890, 42, exp)
	parts := strings.Split(tok, ".")
	if len(parts) != 4 {
		t.Fatalf("token %q: want 4 dot-separated parts", tok)
	}
	if parts[0] != strconv.FormatUint(7_345_678_901_234_567_890, 36) || parts[1] != "16" || parts[2] != strconv.FormatInt(exp.UnixMilli(), 36) {
		t.Errorf("token %q: payload parts are not base36(id).base36(delay).base36(expiry ms)", tok)
	}
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(parts[0] + "." + parts[1] + "." + parts[2]))
	if parts[3] != base58(m.Sum(nil)) {
		t.Errorf("signature %q is not base58(HMAC-SHA256(secret, payload))", parts[3])
	}
	if neg := SignToken("s3cret", 1, -5, exp); !strings.HasPrefix(neg, "1.-5.") {
		t.Errorf("a negative delay (browser clock ahead) = %q, want base36 with a minus sign like OpenReplay", neg)
	}
}

func TestVerify(t *testing.T) {
	s := New("s3cret")
	now := time.Now()
	s.now = func() time.Time { return now }
	good := SignToken("s3cret", 99, 0, now.Add(time.Minute))
	if id, err := s.verify(good); err != nil || id != 99 {
		t.Fatalf("verify(good) = %d, %v", id, err)
	}
	for name, tok := range map[string]string{
		"other secret": SignToken("other", 99, 0, now.Add(time.Minute)),
		"expired":      SignToken("s3cret", 99, 0, now.Add(-time.Second)),
		"tampered id":  "2s" + good[strings.Index(good, "."):],
		"three parts":  good[:strings.LastIndex(good, ".")],
		"empty":        "",
	} {
		if _, err := s.verify(tok); err == nil {
			t.Errorf("%s: verify(%q) accepted it", name, tok)
		}
	}
}

// TestTrackerFlow plays the tracker's requests: start, tags, a batch, and a
// second tab continuing the session with its token.
func TestTrackerFlow(t *testing.T) {
	s := New("s3cret")
	srv := httptest.NewServer(s)
	defer srv.Close()

	pre, _ := http.NewRequest(http.MethodOptions, srv.URL+"/ingest/v1/web/start", nil)
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	start := func(body string) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL+"/ingest/v1/web/start", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("start: status %d", resp.StatusCode)
		}
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ts := time.Now().UnixMilli()
	first := start(`{"projectKey":"k","timestamp":` + strconv.FormatInt(ts, 10) + `}`)
	// The types the tracker checks before it accepts the answer.
	token, ok1 := first["token"].(string)
	sid, ok2 := first["sessionID"].(string)
	_, ok3 := first["userUUID"].(string)
	_, ok4 := first["delay"].(float64)
	_, ok5 := first["startTimestamp"].(float64)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		t.Fatalf("start answer lacks a field of the right type: %v", first)
	}
	id, err := strconv.ParseUint(sid, 10, 64)
	if err != nil || len(sid) != 19 {
		t.Fatalf("sessionID %q: want 19 digits", sid)
	}
	if got, _ := s.verify(token); got != id {
		t.Fatalf("token %q does not verify to session %d", token, id)
	}

	send := func(path, method, auth string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("batch-bytes"))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("/ingest/v1/web/i?batch=0_1_11_kyes", http.MethodPost, ""); code != http.StatusUnauthorized {
		t.Errorf("batch without token: %d, want 401", code)
	}
	if code := send("/ingest/v1/web/i?batch=0_1_11_kyes", http.MethodPost, token); code != http.StatusOK {
		t.Errorf("batch with token: %d, want 200", code)
	}
	if code := send("/ingest/v1/web/tags", http.MethodGet, token); code != http.StatusOK {
		t.Errorf("tags: %d, want 200", code)
	}
	if code := send("/ingest/v1/web/nothing", http.MethodGet, token); code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d, want 404", code)
	}
	if sess, _ := s.Session(id); sess.Batches != 1 || sess.BatchBytes != int64(len("batch-bytes")) || sess.ProjectKey != "k" {
		t.Errorf("session after one batch: %+v", sess)
	}

	again := start(`{"projectKey":"k","timestamp":1,"token":"` + token + `"}`)
	if again["sessionID"] != sid || again["token"] != token {
		t.Errorf("a tab with the session's token got a new session: %v", again)
	}
	other := start(`{"projectKey":"k","timestamp":1}`)
	if other["sessionID"] == sid {
		t.Error("a new tab without token got the same session")
	}
	if n := len(s.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

// TestSignTokenMatchesProxy cross-checks the two independent signers: the
// stand-in's (written from OpenReplay's format) and package proxy's.
func TestSignTokenMatchesProxy(t *testing.T) {
	for _, tc := range []struct {
		id    uint64
		delay int64
		exp   int64
	}{{7_345_678_901_234_567_890, 42, 1_800_000_000_000}, {1, -5, 1}, {18446744073709551615, 0, 253402300799999}} {
		want := proxy.SignSessionToken("s3cret", tc.id, tc.delay, tc.exp)
		if got := SignToken("s3cret", tc.id, tc.delay, time.UnixMilli(tc.exp)); got != want {
			t.Errorf("SignToken(%d, %d, %d) = %q, proxy.SignSessionToken = %q", tc.id, tc.delay, tc.exp, got, want)
		}
	}
}
