package proxy

import (
	"strings"
	"testing"
)

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

func TestPassThroughRequest(t *testing.T) {
	rb := newRawBackend(t, "HTTP/1.1 201 Made It\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Multi: one\r\nX-Multi: two\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\r\nhello")
	tp := startProxy(t, []string{rb.url}, nil)

	resp, body := rawRequest(t, tp.addr, "PUT /a/../b%2Fc//d?x=1&x=2&y=%20z HTTP/1.1\r\n"+
		"Host: app.example\r\n"+
		"x-lower: keep my case\r\n"+
		"X-Rep: 1\r\n"+
		"Connection: keep-alive, X-Drop-Me\r\n"+
		"X-Drop-Me: hop\r\n"+
		"Keep-Alive: timeout=3\r\n"+
		"Proxy-Authorization: Basic c2VjcmV0\r\n"+
		"TE: trailers\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\n"+
		"X-Rep: 2\r\n"+
		"Content-Length: 4\r\n"+
		"\r\n"+
		"data")

	if resp.StatusCode != 201 || resp.Status != "201 Made It" || body != "hello" {
		t.Fatalf("response %q %q", resp.Status, body)
	}
	if got := resp.Header.Values("Set-Cookie"); strings.Join(got, "|") != "a=1|b=2" {
		t.Errorf("Set-Cookie = %q", got)
	}
	if got := resp.Header.Values("X-Multi"); strings.Join(got, "|") != "one|two" {
		t.Errorf("X-Multi = %q", got)
	}
	for _, hop := range []string{"Keep-Alive", "X-Hop"} {
		if v := resp.Header.Get(hop); v != "" {
			t.Errorf("hop-by-hop response field %s = %q reached the client", hop, v)
		}
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID in the response")
	}

	head := rb.lastHead(t)
	if !strings.HasPrefix(head, "PUT /a/../b%2Fc//d?x=1&x=2&y=%20z HTTP/1.1\r\n") {
		t.Errorf("request line changed: %q", strings.SplitN(head, "\r\n", 2)[0])
	}
	if !strings.Contains(head, "\r\nx-lower: keep my case\r\n") {
		t.Errorf("field name case or value changed:\n%s", head)
	}
	if got := headerValues(head, "X-Rep"); strings.Join(got, ",") != "1,2" {
		t.Errorf("repeated field = %q", got)
	}
	if got := headerValues(head, "Host"); len(got) != 1 || got[0] != "app.example" {
		t.Errorf("Host = %q, want the client's", got)
	}
	for _, hop := range []string{"Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "TE"} {
		if v := headerValues(head, hop); len(v) > 0 {
			t.Errorf("hop-by-hop field %s = %q reached the upstream", hop, v)
		}
	}
	if got := headerValues(head, "X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := headerValues(head, "X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := headerValues(head, "X-Forwarded-Host"); len(got) != 1 || got[0] != "app.example" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if got := headerValues(head, "X-Request-ID"); len(got) != 1 || got[0] != resp.Header.Get("X-Request-ID") {
		t.Errorf("X-Request-ID upstream %q, to client %q", got, resp.Header.Get("X-Request-ID"))
	}
	if got := headerValues(head, "traceparent"); len(got) != 1 || len(got[0]) != 55 {
		t.Errorf("traceparent = %q", got)
	}
	if rb.bodies[0] != "data" {
		t.Errorf("body = %q", rb.bodies[0])
	}

	ev := tp.rec.next(t)
	if string(ev.Method) != "PUT" || string(ev.Path) != "/a/../b%2Fc//d" || string(ev.Query) != "x=1&x=2&y=%20z" ||
		ev.Status != 201 || ev.BytesIn != 4 || ev.BytesOut != 5 || string(ev.Upstream) != strings.TrimPrefix(rb.url, "http://") ||
		string(ev.ClientIP) != "127.0.0.1" || string(ev.RequestID) != resp.Header.Get("X-Request-ID") || ev.Duration <= 0 {
		t.Errorf("event = %+v", ev)
	}
}
