package proxy

import "testing"

// TestRequestStartDescribesTheRequest: the start of a request names its
// method and path (without the query) and says whether it is a CORS
// preflight, whether or not the proxy fixes preflight answers; enrich uses
// them to tell which request a backend line is about.
func TestRequestStartDescribesTheRequest(t *testing.T) {
	rb := newRawBackend(t, okResponse)
	on := startProxy(t, []string{rb.url}, nil)
	off := startProxy(t, []string{rb.url}, func(o *Options) { o.CORSAddSessionHeader = false })
	for _, tc := range []struct {
		name      string
		proxy     *testProxy
		request   string
		method    string
		path      string
		preflight bool
	}{
		{"a GET with a query", on, "GET /api/cart?id=9&token=secret HTTP/1.1\r\nHost: a\r\nopenReplaySession.id: 42\r\n\r\n", "GET", "/api/cart", false},
		{"a preflight", on, "OPTIONS /api/cart HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n", "OPTIONS", "/api/cart", true},
		{"a preflight, CORS fixing off", off, "OPTIONS /api/cart HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n", "OPTIONS", "/api/cart", true},
		{"OPTIONS without a requested method", on, "OPTIONS /api/cart HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\n\r\n", "OPTIONS", "/api/cart", false},
		{"OPTIONS without an origin", on, "OPTIONS * HTTP/1.1\r\nHost: a\r\nAccess-Control-Request-Method: GET\r\n\r\n", "OPTIONS", "*", false},
		{"an absolute-form target", on, "POST http://a/api/orders?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "POST", "/api/orders", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rawRequest(t, tc.proxy.addr, tc.request)
			ev := tc.proxy.rec.next(t)
			s := tc.proxy.rec.startedFor(t, ev.Seq)
			if string(s.Method) != tc.method || string(s.Path) != tc.path || s.Preflight != tc.preflight {
				t.Errorf("RequestStart method %q path %q preflight %v, want %q %q %v", s.Method, s.Path, s.Preflight, tc.method, tc.path, tc.preflight)
			}
			if string(ev.Method) != string(s.Method) || string(ev.Path) != string(s.Path) {
				t.Errorf("the access event says %s %s, the start %s %s", ev.Method, ev.Path, s.Method, s.Path)
			}
		})
	}
}
