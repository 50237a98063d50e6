package proxy

import (
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	o := Options{Upstreams: []string{"http://127.0.0.1:5000", "https://api.internal"}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.ConnectTimeout != DefaultConnectTimeout || o.MaxHeaderBytes != DefaultMaxHeaderBytes || o.MaxFails != DefaultMaxFails ||
		strings.Join(o.Sessions.Sources, ",") != "header,token,baggage" || o.ErrorBodyBytes != DefaultErrorBodyBytes || o.CORSAddSessionHeader ||
		o.ClientBodyTimeout != DefaultClientBodyTimeout || o.ClientBodyMinRate != DefaultClientBodyMinRate ||
		o.MaxConnsPerClient != DefaultMaxConnsPerClient || o.MaxConnsPerUpstream != DefaultMaxConnsPerUpstream {
		t.Errorf("defaults not applied as documented: %+v", o)
	}
	if addr, tls, _ := parseUpstreamURL("https://api.internal"); addr != "api.internal:443" || !tls {
		t.Errorf("https default port: %s %v", addr, tls)
	}

	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no upstream"},
		{Options{Upstreams: []string{"ftp://x"}}, "needs http:// or https://"},
		{Options{Upstreams: []string{"http://x:1/api"}}, "may only have scheme, host and port"},
		{Options{Upstreams: []string{"http://"}}, "has no host"},
		{Options{Upstreams: []string{"http://x"}, Listen: "8080"}, "Listen"},
		{Options{Upstreams: []string{"http://x"}, IdleTimeout: -1}, "IdleTimeout must not be negative"},
		{Options{Upstreams: []string{"http://x"}, MaxHeaderBytes: 10}, "MaxHeaderBytes 10 is out of range"},
		{Options{Upstreams: []string{"http://x"}, ClientBodyTimeout: -1}, "ClientBodyTimeout must not be negative"},
		{Options{Upstreams: []string{"http://x"}, MaxConnsPerClient: -1}, "MaxConnsPerClient must not be negative"},
		{Options{Upstreams: []string{"http://x"}, UpstreamHost: "a b"}, "UpstreamHost"},
		{Options{Upstreams: []string{"http://x"}, Sessions: SessionOptions{Sources: []string{"cookie"}}}, "needs a cookie name"},
	} {
		if err := tc.o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	if err := (&Options{Upstreams: []string{"http://x"}, ErrorBodyBytes: -1}).Validate(); err != nil {
		t.Errorf("negative ErrorBodyBytes (keep nothing) refused: %v", err)
	}
	if err := (&Options{Upstreams: []string{"http://x"}, ClientBodyMinRate: -1}).Validate(); err != nil {
		t.Errorf("negative ClientBodyMinRate (no extension) refused: %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted options without upstream")
	}
}
