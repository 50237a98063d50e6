package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secret logs") })

func call(h http.Handler, host, auth string) (int, string, http.Header) {
	req := httptest.NewRequest(http.MethodGet, "/sessions/1/logs", nil)
	req.Host = host
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestPolicyToken(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:9090", "0.0.0.0:9090"} {
		p, warn := NewPolicy(listen, "s3cret-token", false)
		if warn != "" || !p.Serving() {
			t.Fatalf("%s with a token: warning %q serving %v", listen, warn, p.Serving())
		}
		h := p.Protect(okHandler)
		for _, c := range []struct {
			auth string
			want int
		}{
			{"Bearer s3cret-token", 200},
			{"bearer s3cret-token", 200},
			{"", 401},
			{"Bearer s3cret-toke", 401},
			{"Bearer s3cret-token-and-more", 401},
			{"Basic s3cret-token", 401},
			{"s3cret-token", 401},
		} {
			code, body, hdr := call(h, "example.com", c.auth)
			if code != c.want {
				t.Errorf("%s, Authorization %q: %d, want %d", listen, c.auth, code, c.want)
			}
			if code == 401 {
				if strings.Contains(body, "secret logs") || strings.Contains(body, "s3cret") {
					t.Errorf("401 leaks: %q", body)
				}
				if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer")
				}
			}
		}
	}
}

func TestPolicyWithoutToken(t *testing.T) {
	for _, c := range []struct {
		listen      string
		allow       bool
		serving     bool
		warns       string
		host        string
		code        int
		bodyContain string
	}{
		{"127.0.0.1:9090", false, true, "", "127.0.0.1:9090", 200, "secret logs"},
		{"localhost:9090", false, true, "", "localhost:9090", 200, "secret logs"},
		{"[::1]:9090", false, true, "", "[::1]:9090", 200, "secret logs"},
		// DNS rebinding: a web page's name that resolves to 127.0.0.1.
		{"127.0.0.1:9090", false, true, "", "evil.example:9090", 403, "not a loopback name"},
		{":9090", false, false, "lookup and ingest are off", "10.0.0.5:9090", 403, "set --admin-token"},
		{"0.0.0.0:9090", false, false, "--allow-remote-lookup", "10.0.0.5:9090", 403, "--allow-remote-lookup"},
		{"10.0.0.5:9090", false, false, "health and metrics are still served", "10.0.0.5:9090", 403, "lookup and ingest are off"},
		{"admin.internal:9090", false, false, "off", "admin.internal:9090", 403, "off"},
		{"0.0.0.0:9090", true, true, "open to anyone", "10.0.0.5:9090", 200, "secret logs"},
	} {
		p, warn := NewPolicy(c.listen, "", c.allow)
		if p.Serving() != c.serving {
			t.Errorf("%s allow=%v: serving %v, want %v", c.listen, c.allow, p.Serving(), c.serving)
		}
		if (c.warns == "") != (warn == "") || !strings.Contains(warn, c.warns) {
			t.Errorf("%s allow=%v: warning %q, want one containing %q", c.listen, c.allow, warn, c.warns)
		}
		code, body, _ := call(p.Protect(okHandler), c.host, "")
		if code != c.code || !strings.Contains(body, c.bodyContain) {
			t.Errorf("%s allow=%v Host %s: %d %q, want %d containing %q", c.listen, c.allow, c.host, code, body, c.code, c.bodyContain)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090": true, "127.1.2.3:1": true, "[::1]:9090": true, "localhost:9090": true, "LOCALHOST:1": true,
		":9090": false, "0.0.0.0:9090": false, "[::]:9090": false, "192.168.1.4:9090": false, "pod:9090": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestSameOriginWrites(t *testing.T) {
	h := SameOriginWrites(okHandler)
	for _, c := range []struct {
		name, method, origin, fetchSite string
		want                            int
	}{
		{"cross-site page", "POST", "https://evil.example", "cross-site", 403},
		{"cross-site page, old browser", "POST", "https://evil.example", "", 403},
		{"page on another localhost port", "POST", "http://127.0.0.1:3000", "same-site", 403},
		{"page on another localhost port, old browser", "POST", "http://127.0.0.1:3000", "", 403},
		{"sandboxed page", "POST", "null", "", 403},
		{"cross-site PUT", "PUT", "https://evil.example", "cross-site", 403},
		{"cross-site DELETE", "DELETE", "", "cross-site", 403},
		{"own page", "POST", "http://127.0.0.1:9090", "same-origin", 200},
		{"own page, old browser", "POST", "http://127.0.0.1:9090", "", 200},
		{"typed by the user", "POST", "", "none", 200},
		{"curl", "POST", "", "", 200},
		{"cross-site read", "GET", "https://evil.example", "cross-site", 200},
	} {
		req := httptest.NewRequest(c.method, "/ingest", strings.NewReader("x\n"))
		req.Host = "127.0.0.1:9090"
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		before := rejectedCross.Get()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, rec.Code, c.want, rec.Body.String())
			continue
		}
		counted := rejectedCross.Get() - before
		if c.want == 403 && (counted != 1 || !strings.Contains(rec.Body.String(), "another origin") || strings.Contains(rec.Body.String(), "secret logs")) {
			t.Errorf("%s: refused without the reason or the count (%d): %q", c.name, counted, rec.Body.String())
		}
		if c.want == 200 && counted != 0 {
			t.Errorf("%s: passed but counted as refused", c.name)
		}
	}
}
