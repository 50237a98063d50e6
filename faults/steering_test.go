package faults

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
	"github.com/replaylink/replaylink/proxy"
)

// victimSession is the session whose replay the attacks try to write into.
const victimSession = "7204916803563247"

// TestAttributionCannotBeSteered: attacks from outside on attribution, as a
// hostile user makes them against an app that logs what users type (the
// test backend under replaylink run, printing in Python's default format).
// Each one tries to move the attacker's line into the victim's session;
// each failed on the code before the attribution invariants
// (enrich/attribution.go, docs/reliability.md "Attacks from outside").
func TestAttributionCannotBeSteered(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	const secret = "steering-test-token-secret"
	victimToken := proxy.SignSessionToken(secret, 7204916803563247, 0, time.Now().Add(time.Hour).UnixMilli())
	tokenOnly := []string{"--session-source", "token", "--openreplay-token-secret", secret}

	for _, tc := range []struct {
		name string
		args []string
		// victim is the victim's request, sent first, in its session;
		// attack is the attacker's, sent after delay, while the victim's
		// is in flight or just after it ended.
		victim, attack          string
		victimHdr, attackHdr    map[string]string
		delay                   time.Duration
		wantAttackerSession     string // the session the attacker's line must be in ("" none)
		attackerSessionOptional bool   // none is fine too
	}{
		{
			// Issue 18, 1: a sessionless request whose logged input looks
			// like the access line of the victim's request, which ended
			// half a second before (the old 1 s access-line reach).
			name:      "access line in user input, after the victim's request",
			victim:    "/slow?ms=50",
			victimHdr: map[string]string{"openReplaySession.id": victimSession},
			attack:    "/search?q=" + url.QueryEscape(`"GET /slow HTTP/1.1" 200 INJECTED-1`),
			delay:     500 * time.Millisecond,
		},
		{
			// Issue 18, 1: Django's error form in user input, sent under
			// another session while the victim's request runs.
			name:                "django form in user input, during the victim's request",
			victim:              "/slow?ms=600",
			victimHdr:           map[string]string{"openReplaySession.id": victimSession},
			attack:              "/search?q=" + url.QueryEscape("Internal Server Error: /slow INJECTED-2"),
			attackHdr:           map[string]string{"openReplaySession.id": "4242"},
			delay:               200 * time.Millisecond,
			wantAttackerSession: "4242", attackerSessionOptional: true,
		},
		{
			// Issue 18, 1: the same line carrying its own correct marker
			// (the app follows OpenReplay's guide): the name in it must
			// not override the marker.
			name:   "django form after the attacker's own marker",
			victim: "/slow?ms=600", victimHdr: map[string]string{"openReplaySession.id": victimSession},
			attack:              "/echo?msg=" + url.QueryEscape("[openReplaySession.id=4243] Internal Server Error: /slow"),
			attackHdr:           map[string]string{"openReplaySession.id": "4243"},
			delay:               200 * time.Millisecond,
			wantAttackerSession: "4243",
		},
		{
			// Issue 18, 2: with token-only trust, a plain header reaches
			// a backend that prints it as the guide's marker.
			name: "plain header with token-only trust", args: tokenOnly,
			victim: "/slow?ms=600", victimHdr: map[string]string{"X-OpenReplay-Session-Token": victimToken},
			attack:    "/guide?tag=INJECTED-4",
			attackHdr: map[string]string{"openReplaySession.id": victimSession},
			delay:     200 * time.Millisecond,
		},
		{
			// Issue 18, 2: with token-only trust, a marker at the start
			// of logged user input.
			name: "marker in user input with token-only trust", args: tokenOnly,
			victim: "/slow?ms=600", victimHdr: map[string]string{"X-OpenReplay-Session-Token": victimToken},
			attack: "/echo?msg=" + url.QueryEscape("[openReplaySession.id="+victimSession+"] INJECTED-5"),
			delay:  200 * time.Millisecond,
		},
		{
			// Issue 18, 3: the attacker chose an X-Request-ID, then the
			// victim's logged input holds it (a link the attacker made
			// the victim open): the victim's line must stay the victim's.
			name:   "client-chosen request id planted in the victim's input",
			attack: "/slow?ms=10", attackHdr: map[string]string{"X-Request-ID": "order7f3a9c2e11d04b", "openReplaySession.id": "4244"},
			victim: "/search?q=" + url.QueryEscape("order7f3a9c2e11d04b INJECTED-6"), victimHdr: map[string]string{"openReplaySession.id": victimSession},
			delay: -300 * time.Millisecond, // the attack goes first
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "docs.ndjson")
			addr := estest.FreeAddr(t)
			in := startReplaylink(t, procOptions{command: "run", child: backendCommand(addr), args: append([]string{
				"--upstream", "http://" + addr, "--spool-dir", filepath.Join(dir, "spool"), "--output", out, "--flush-interval", "100ms",
			}, tc.args...)})
			waitFor(10*time.Second, func() bool { return readyz(in) == http.StatusOK })
			send := func(target string, hdr map[string]string) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+in.Listen+target, nil)
				for k, v := range hdr {
					req.Header[k] = []string{v} // as sent, no canonicalisation
				}
				resp, err := plainClient.Do(req)
				if err != nil {
					t.Errorf("%s: %v", target, err)
					return
				}
				resp.Body.Close()
			}
			first, second := tc.victim, tc.attack
			firstHdr, secondHdr := tc.victimHdr, tc.attackHdr
			delay := tc.delay
			if delay < 0 {
				first, second, firstHdr, secondHdr, delay = tc.attack, tc.victim, tc.attackHdr, tc.victimHdr, -delay
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); send(first, firstHdr) }()
			time.Sleep(delay)
			send(second, secondHdr)
			wg.Wait()

			injected := "INJECTED-"
			if tc.name == "django form after the attacker's own marker" {
				injected = "Internal Server Error: /slow"
			}
			var line *steeredDoc
			waitFor(15*time.Second, func() bool {
				line = findBackendDoc(t, out, injected)
				return line != nil
			})
			if line == nil {
				t.Fatalf("no document for the attacker's line (%q) in %s", injected, out)
			}
			r.add(strings.ReplaceAll(tc.name, " ", "_"), line.Session.ID+"/"+line.Replaylink.Attribution)
			victimLine := strings.Contains(tc.victim, injected)
			switch {
			case victimLine && line.Session.ID != victimSession:
				t.Errorf("the victim's own line went to session %q (%s), want %s: %s", line.Session.ID, line.Replaylink.Attribution, victimSession, line.raw)
			case !victimLine && line.Session.ID == victimSession:
				t.Errorf("the attacker's line went into the victim's session as %s: %s", line.Replaylink.Attribution, line.raw)
			case !victimLine && tc.wantAttackerSession != "" && line.Session.ID != tc.wantAttackerSession &&
				!(tc.attackerSessionOptional && line.Session.ID == ""):
				t.Errorf("the attacker's line went to session %q, want %s: %s", line.Session.ID, tc.wantAttackerSession, line.raw)
			}
			if strings.Contains(line.Message, "[openReplaySession.id="+victimSession+"]") && !victimLine {
				t.Errorf("the attacker's line carries the victim's marker, OpenReplay would show it: %s", line.raw)
			}
		})
	}
}

// steeredDoc is what the steering test reads of a backend document.
type steeredDoc struct {
	Message string   `json:"message"`
	Tags    []string `json:"tags"`
	Session struct {
		ID string `json:"id"`
	} `json:"openReplaySession"`
	Replaylink struct {
		Attribution string `json:"attribution"`
	} `json:"replaylink"`
	raw string
}

// findBackendDoc returns the last backend document in the output file whose
// message contains text.
func findBackendDoc(t *testing.T, out, text string) *steeredDoc {
	var found *steeredDoc
	for _, raw := range readLines(t, out) {
		var d steeredDoc
		if json.Unmarshal(raw, &d) != nil || !slices.Contains(d.Tags, "backend") || !strings.Contains(d.Message, text) {
			continue
		}
		d.raw = string(raw)
		found = &d
	}
	return found
}
