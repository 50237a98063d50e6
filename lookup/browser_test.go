package lookup

import (
	"bytes"
	"context"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium; without it the test is skipped, except
// under CI=true where a missing browser is a failure (make test installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: install it (apt-get install -y chromium); the page test needs a real browser")
	}
	t.Skip("chromium not found (apt-get install -y chromium)")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,800",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// artifactDir keeps the screenshot where people can look at it:
// $REPLAYLINK_ARTIFACTS when set, else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("REPLAYLINK_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestSessionPageInChromium(t *testing.T) {
	bin := chromium(t)
	rec := newStore(sampleSession("7391048572913", t0)...)
	// A few more requests, so the page looks like a real session.
	for i, s := range sampleSession("7391048572913", t0.Add(1500*time.Millisecond)) {
		if i != 4 { // one traceback is enough to look at
			rec.Add([]byte(s.id+"-late"), bytes.ReplaceAll(s.src, []byte("req-"), []byte("req-late-")))
		}
	}
	srv := httptest.NewServer(NewHandler(Options{MemoryStore: rec}))
	defer srv.Close()
	url := srv.URL + "/sessions/7391048572913"

	dom := string(runChromium(t, bin, "--dump-dom", url))
	if !strings.Contains(dom, "Traceback (most recent call last):") {
		t.Fatalf("the browser did not render the session page:\n%.2000s", dom)
	}
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<img") {
		t.Fatal("a log line injected an element into the page")
	}
	if !strings.Contains(dom, "&lt;script&gt;document.title='pwned'&lt;/script&gt;") {
		t.Error("the log line holding <script> is not shown as text")
	}
	if !strings.Contains(dom, "<title>Session 7391048572913 · replaylink</title>") {
		t.Error("the page's title changed: something ran")
	}

	shot := filepath.Join(artifactDir(t), "lookup-session-page.png")
	runChromium(t, bin, "--screenshot="+shot, url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1280x800", b.Dx(), b.Dy())
	}
	colours := map[uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y += 7 {
		for x := 0; x < img.Bounds().Dx(); x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>12<<8|g>>12<<4|b>>12] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("screenshot has %d colours: the page looks blank", len(colours))
	}
	t.Logf("screenshot: %s", shot)

	// The page of one request, reached from the session page's link.
	reqURL := srv.URL + "/requests/req-2"
	dom = string(runChromium(t, bin, "--dump-dom", reqURL))
	if !strings.Contains(dom, "Traceback (most recent call last):") || !strings.Contains(dom, `href="../sessions/7391048572913"`) || strings.Contains(dom, "<script") {
		t.Fatalf("request page:\n%.2000s", dom)
	}
	shot = filepath.Join(artifactDir(t), "lookup-request-page.png")
	runChromium(t, bin, "--screenshot="+shot, reqURL)
	t.Logf("screenshot: %s", shot)
}
