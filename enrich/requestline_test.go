package enrich

import (
	"hash/maphash"
	"strings"
	"testing"
)

func TestFindRequest(t *testing.T) {
	for _, tc := range []struct {
		name, line   string
		method, path string // path "": no request named
		status       int
	}{
		{"flask exception", "ERROR:app:Exception on /api/cart [GET]", "GET", "/api/cart", 0},
		{"flask exception, other format", "[2024-05-01 10:00:00,123] ERROR in app: Exception on /api/orders/7 [POST]", "POST", "/api/orders/7", 0},
		{"flask exception, a path with a space", "ERROR:app:Exception on /a b [GET]", "GET", "/a b", 0},
		{"werkzeug access line", `INFO:werkzeug:127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart HTTP/1.1" 500 -`, "GET", "/api/cart", 500},
		{"werkzeug access line with a query", `127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/cart?id=9 HTTP/1.1" 200 -`, "GET", "/api/cart", 200},
		{"gunicorn access line", `10.0.0.7 - - [01/May/2024:10:00:00 +0000] "POST /api/checkout HTTP/1.1" 502 0 "https://shop.example/cart" "Mozilla/5.0"`, "POST", "/api/checkout", 502},
		{"uvicorn access line", `INFO:     127.0.0.1:54321 - "DELETE /api/items/3 HTTP/1.1" 404 Not Found`, "DELETE", "/api/items/3", 404},
		{"django runserver", `[24/Nov/2026 23:53:42] "GET /api/cart/ HTTP/1.1" 500 145`, "GET", "/api/cart/", 500},
		{"django request logger", "Internal Server Error: /api/cart/", "", "/api/cart/", 0},
		{"django request logger, prefixed", "ERROR:django.request:Internal Server Error: /api/cart/", "", "/api/cart/", 0},
		{"django not found", "WARNING:django.request:Not Found: /favicon.ico", "", "/favicon.ico", 0},
		{"rails", `Started GET "/api/cart?id=9" for 127.0.0.1 at 2024-05-01 10:00:00 +0000`, "GET", "/api/cart", 0},
		{"gin", `[GIN] 2024/05/01 - 10:00:00 | 500 |    1.2ms |  127.0.0.1 | GET      "/api/cart"`, "GET", "/api/cart", 0},
		{"morgan dev", "PATCH /api/profile 500 12.345 ms - 20", "PATCH", "/api/profile", 500},
		{"nginx", `127.0.0.1 - - [01/May/2024:10:00:00 +0000] "HEAD /health HTTP/1.0" 200 0 "-" "curl/8"`, "HEAD", "/health", 200},
		{"a short access line", `127.0.0.1 - "GET /x HTTP/1.1" 503`, "GET", "/x", 503},

		// Not the request being handled, or not a request at all.
		{"urllib3 logs an outgoing call", `DEBUG:urllib3.connectionpool:http://inventory:80 "GET /api/stock HTTP/1.1" 200 12`, "", "", 0},
		{"an outgoing call with a full URL", "INFO:httpx:HTTP Request: GET http://inventory/api/stock \"HTTP/1.1 200 OK\"", "", "", 0},
		{"a plain message", "ERROR:app:payment failed for order 1234", "", "", 0},
		{"a method word without a path", "GET requests are cached for 5 s", "", "", 0},
		{"a method glued into a word", `XGET /api/cart 200`, "", "", 0},
		{"not a known method", `"PROPFIND /dav HTTP/1.1" 207 -`, "", "", 0},
		{"a request line without a status", `"GET /api/cart HTTP/1.1" -`, "", "", 0},
		{"a status out of range", `GET /api/cart 999`, "", "", 0},
		{"a number, not a status", `GET /api/cart 5000 bytes`, "", "", 0},
		{"exception on, not at the end", "ERROR:app:Exception on /api/cart [GET] while retrying", "", "", 0},
		{"exception on, not a method", "ERROR:app:Exception on /api/cart [worker-1]", "", "", 0},
		{"ipv6 werkzeug access line", `INFO:werkzeug:::1 - - [24/Nov/2026 23:53:42] "GET /api/cart HTTP/1.1" 500 -`, "GET", "/api/cart", 500},
		{"rails, tagged", `I, [2024-05-01T10:00:00.123456 #1]  INFO -- : [8f5e2c] Started POST "/api/cart" for 127.0.0.1 at 2024-05-01 10:00:00 +0000`, "POST", "/api/cart", 0},
		{"morgan dev, prefixed", "info: GET /api/cart 404 0.512 ms - -", "GET", "/api/cart", 404},

		// Forms inside a message: what a user typed, logged by the app.
		{"an access line inside a message", `ERROR:app:search failed for: "GET /api/slow HTTP/1.1" 200 INJECTED`, "", "", 0},
		{"an access line after words", `search failed for: "GET /api/slow HTTP/1.1" 200`, "", "", 0},
		{"an access line with a tail of words", `127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /api/slow HTTP/1.1" 200 - INJECTED by "me"`, "", "", 0},
		{"django error inside a message", "ERROR:app:bad query Internal Server Error: /api/slow", "", "", 0},
		{"django error with more after the path", "Internal Server Error: /api/slow and more", "", "", 0},
		{"flask exception inside a message", "ERROR:app:user typed Exception on /api/slow [GET]", "", "", 0},
		{"morgan dev inside a message", "ERROR:app:echo GET /api/slow 200 1.0 ms - 2", "", "", 0},
		{"morgan dev with more after it", "GET /api/slow 200 1.0 ms - 2 INJECTED", "", "", 0},
		{"rails inside a message", `WARN -- : user said Started GET "/api/slow" for 1.2.3.4 at now`, "", "", 0},
		{"two forms on one line", `GET /a 200 then "POST /b HTTP/1.1" 500`, "", "", 0},
		{"a line over the scan limit", `127.0.0.1 - - [24/Nov/2026 23:53:42] "GET /` + strings.Repeat("a", maxRequestScan) + ` HTTP/1.1" 200 -`, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := findRequest([]byte(tc.line))
			var method string
			if r.method != methodUnknown {
				method = methodNames[r.method]
			}
			if string(r.path) != tc.path || method != tc.method || r.status != tc.status || r.found() != (tc.path != "") {
				t.Errorf("findRequest(%q) = %s %q %d, want %s %q %d", tc.line, method, r.path, r.status, tc.method, tc.path, tc.status)
			}
		})
	}
}

var methodNames = [...]string{"", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"}

func TestPathKey(t *testing.T) {
	seed := maphash.MakeSeed()
	key := func(s string) uint64 { return pathKey(seed, []byte(s)) }
	same := [][2]string{
		{"/api/cart", "/api/cart?id=9"},
		{"/caf%C3%A9", "/café"},
		{"/caf%c3%a9", "/café"},
		{"/a%20b", "/a b"},
		{"/100%", "/100%"},
		{"/a%zz", "/a%zz"},
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("%q and %q have different keys", p[0], p[1])
		}
	}
	differ := [][2]string{{"/api/cart", "/api/cart/"}, {"/api/cart", "/api/carts"}, {"/a%2", "/a%20"}, {"/", ""}}
	for _, p := range differ {
		if key(p[0]) == key(p[1]) {
			t.Errorf("%q and %q have the same key", p[0], p[1])
		}
	}
	if key("") == 0 {
		t.Error("key 0 means not known")
	}
}
