package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/examples/openreplaystub"
)

// testSecret stands for OpenReplay's token secret in these tests.
const testSecret = "e2e-openreplay-token-secret"

// pageState is window.demo of the frontend example.
type pageState struct {
	Started    bool   `json:"started"`
	SessionID  string `json:"sessionID"`
	StartError string `json:"startError"`
	Calls      []struct {
		Path      string `json:"path"`
		Status    int    `json:"status"`
		Error     string `json:"error"`
		RequestID string `json:"requestID"`
		At        int64  `json:"at"` // Unix ms when the answer arrived
	} `json:"calls"`
}

// pageURL is the frontend example's page in auto mode (both calls right after start).
func pageURL(pageBase, mode, ingest, api string) string {
	q := url.Values{"mode": {mode}, "ingest": {ingest + "/ingest"}, "api": {api}, "auto": {"1"}, "projectKey": {"e2e"}}
	return pageBase + "/index.html?" + q.Encode()
}

// runPage opens the page in a new tab, waits for its calls and returns its
// state with the tab (for more steps).
func runPage(ctx context.Context, t *testing.T, b *browser, u string) (*page, pageState) {
	t.Helper()
	p, err := b.newPage(ctx, 1280, 800)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.navigate(ctx, u); err != nil {
		t.Fatalf("%v\npage log:\n%s", err, b.Logs())
	}
	if _, err := p.waitFor(ctx, `document.body.dataset.state === "done"`); err != nil {
		t.Fatalf("page did not finish: %v\npage log:\n%s", err, b.Logs())
	}
	var st pageState
	if err := p.eval(ctx, "window.demo", &st); err != nil {
		t.Fatal(err)
	}
	if !st.Started || st.SessionID == "" {
		t.Fatalf("tracker did not start a session: %q\npage log:\n%s", st.StartError, b.Logs())
	}
	return p, st
}

// recordedRequest is what the API stand-in saw of one request.
type recordedRequest struct {
	Method, Path string
	Header       http.Header
}

// apiRecorder is an API that records requests and lets any origin send any
// header, so the browser's own behaviour is observed apart from replaylink's.
type apiRecorder struct {
	mu   sync.Mutex
	seen []recordedRequest
}

func (a *apiRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.seen = append(a.seen, recordedRequest{r.Method, r.URL.Path, r.Header.Clone()})
	a.mu.Unlock()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.URL.Path == "/api/cart" {
		http.Error(w, "KeyError: 'cart_id'", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("Success"))
}

func (a *apiRecorder) get(path string) (recordedRequest, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.seen {
		if r.Method == http.MethodGet && r.Path == path {
			return r, true
		}
	}
	return recordedRequest{}, false
}

// TestTrackerPropagatesSession checks the frontend example with the real
// tracker in a real browser, without replaylink: what exactly reaches the
// API in each mode, and that the tracker's token is OpenReplay's (signed,
// carrying the session id the tracker reports).
func TestTrackerPropagatesSession(t *testing.T) {
	needChromium(t)
	frontend := needBundle(t)

	stub := openreplaystub.New(testSecret)
	ingest := httptest.NewServer(stub)
	t.Cleanup(ingest.Close)
	pages := serveDir(t, frontend)
	b := startBrowser(t)

	for _, mode := range []string{"token", "header"} {
		t.Run(mode, func(t *testing.T) {
			api := &apiRecorder{}
			apiSrv := httptest.NewServer(api)
			t.Cleanup(apiSrv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			p, st := runPage(ctx, t, b, pageURL(pages.URL, mode, ingest.URL, apiSrv.URL))
			if len(st.Calls) != 2 || st.Calls[0].Status != 200 || st.Calls[1].Status != 500 {
				t.Fatalf("page calls = %+v, want /api/endpoint 200 then /api/cart 500", st.Calls)
			}
			id, err := strconv.ParseUint(st.SessionID, 10, 64)
			if err != nil {
				t.Fatalf("tracker's session id %q: %v", st.SessionID, err)
			}
			sess, ok := stub.Session(id)
			if !ok {
				t.Fatalf("tracker reports session %d, which the ingest stand-in never issued", id)
			}
			req, ok := api.get("/api/cart")
			if !ok {
				t.Fatal("the API never saw GET /api/cart")
			}
			token := req.Header.Get("X-OpenReplay-SessionToken")
			header := req.Header.Get("openReplaySession.id")
			switch mode {
			case "token":
				if token != sess.Token {
					t.Errorf("X-OpenReplay-SessionToken = %q, want the session's token %q", token, sess.Token)
				}
				if first, _, _ := strings.Cut(token, "."); first != strconv.FormatUint(id, 36) {
					t.Errorf("token %q does not start with base36(%d)", token, id)
				}
				if header != "" {
					t.Errorf("zero-code mode sent openReplaySession.id %q", header)
				}
			case "header":
				if header != st.SessionID {
					t.Errorf("openReplaySession.id = %q, want %q", header, st.SessionID)
				}
				if token != "" {
					t.Errorf("manual mode sent a session token %q", token)
				}
			}
			if png, err := p.screenshot(ctx); err == nil {
				_ = os.WriteFile(filepath.Join(artifactDir(t), "frontend-"+mode+".png"), png, 0o644)
			}

			// The tracker really records: its batches reach the ingest point.
			// (The page asks for them at once after its calls.)
			deadline := time.Now().Add(10 * time.Second)
			for sess.Batches == 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				sess, _ = stub.Session(id)
			}
			if sess.Batches == 0 {
				t.Errorf("no recording batch of session %d reached the ingest stand-in\npage log:\n%s", id, b.Logs())
			}
		})
	}
}
