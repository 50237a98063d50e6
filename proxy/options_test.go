package proxy

import (
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	o := testOptions("http://127.0.0.1:5000", "https://api.internal")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if addr, tls, _ := parseUpstreamURL("https://api.internal"); addr != "api.internal:443" || !tls {
		t.Errorf("https default port: %s %v", addr, tls)
	}
	with := func(set func(*Options)) Options { o := testOptions("http://x"); set(&o); return o }
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{with(func(o *Options) { o.Upstreams = nil }), "no upstream"},
		{with(func(o *Options) { o.Upstreams = []string{"ftp://x"} }), "needs http:// or https://"},
		{with(func(o *Options) { o.Upstreams = []string{"http://x:1/api"} }), "may only have scheme, host and port"},
		{with(func(o *Options) { o.Upstreams = []string{"http://"} }), "has no host"},
		{with(func(o *Options) { o.Listen = "8080" }), "Listen"},
		{with(func(o *Options) { o.IdleTimeout = -1 }), "--idle-timeout -1: must be greater than zero"},
		{with(func(o *Options) { o.ConnectTimeout = 0 }), "--connect-timeout 0: must be greater than zero"},
		{with(func(o *Options) { o.MaxHeaderBytes = 10 }), "--max-header-bytes 10 is out of range"},
		{with(func(o *Options) { o.ClientBodyTimeout = -1 }), "--client-body-timeout -1"},
		{with(func(o *Options) { o.MaxConnsPerClient = 0 }), "--max-conns-per-client 0"},
		{with(func(o *Options) { o.MaxFails = 0 }), "--max-fails 0"},
		{with(func(o *Options) { o.FailCooldown = -1 }), "--fail-cooldown"},
		{with(func(o *Options) { o.ClientBodyMinRate = -1 }), "--client-body-min-rate -1"},
		{with(func(o *Options) { o.ErrorBodyBytes = -1 }), "--error-body-bytes -1 is out of range"},
		{with(func(o *Options) { o.ErrorBodyBytes = 16<<10 + 1 }), "--error-body-bytes 16385 is out of range"},
		{with(func(o *Options) { o.UpstreamHost = "a b" }), "UpstreamHost"},
		{with(func(o *Options) { o.Sessions = SessionOptions{} }), "--session-source: none given"},
		{with(func(o *Options) { o.Sessions = SessionOptions{Sources: []ConfiguredSource{LookInCookie}} }), "needs a cookie name"},
	} {
		if err := tc.o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	// Zero means what it says where a user may type it.
	zero := with(func(o *Options) { o.ErrorBodyBytes, o.ClientBodyMinRate, o.FailCooldown = 0, 0, 0 })
	if err := zero.Validate(); err != nil {
		t.Errorf("no error body, no rate extension, no cool-down refused: %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted zero options")
	}
}
