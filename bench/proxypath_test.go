// Package bench holds make bench's end-to-end Go benchmark; the scenarios
// against nginx, HAProxy, Caddy and the search node are in harness.py, and
// the programs they use are in the directories below.
package bench

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/replaylink/replaylink/enrich"
	"github.com/replaylink/replaylink/proxy"
	"github.com/replaylink/replaylink/ship"
)

// BenchmarkProxyPath is one proxied GET over loopback (fasthttp client ->
// proxy -> fasthttp backend, small JSON response, a session header), as the
// binary wires it: with no Observer (logging off), and with enrich and ship
// behind it (access document, spool append, memory store, output to
// io.Discard). The difference between the two is what recording a request
// costs; allocations count all three parties and the pipeline's goroutines.
func BenchmarkProxyPath(b *testing.B) {
	body := []byte(`{"ok":true,"items":[1,2,3]}`)
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go backend.Serve(backendLn) //nolint:errcheck
	defer backend.Shutdown()    //nolint:errcheck

	for _, bc := range []struct {
		name    string
		logging bool
	}{{"observer=none", false}, {"observer=enrich", true}} {
		b.Run(bc.name, func(b *testing.B) {
			// The binary's defaults (config/config.go), as cmd/replaylink maps them.
			opts := proxy.Options{
				Upstreams: []string{"http://" + backendLn.Addr().String()}, CORSAddSessionHeader: true,
				ConnectTimeout: 5 * time.Second, ResponseHeaderTimeout: 60 * time.Second, IdleTimeout: 90 * time.Second,
				ClientHeaderTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10, ClientBodyTimeout: 60 * time.Second, ClientBodyMinRate: 16 << 10,
				MaxConnsPerClient: 1024, MaxConnsPerUpstream: 4096, MaxFails: 3, FailCooldown: 10 * time.Second, ErrorBodyBytes: 8 << 10,
				Sessions: proxy.SessionOptions{Sources: []proxy.ConfiguredSource{proxy.LookInHeader, proxy.LookInToken, proxy.LookInBaggage}},
			}
			var (
				shipper  *ship.Shipper
				enricher *enrich.Enricher
			)
			if bc.logging {
				shipper, err = ship.New(ship.Options{SpoolDir: b.TempDir(), SpoolMaxBytes: 256 << 20, SyncInterval: 200 * time.Millisecond,
					FlushBytes: 5_000_000, FlushInterval: time.Second, Workers: 2, Index: "logs", MemoryStore: 50_000, Output: io.Discard})
				if err != nil {
					b.Fatal(err)
				}
				enricher, err = enrich.New(enrich.Options{ServiceName: "bench", Publisher: shipper, MarkInfoLimit: 200, AttributionGrace: 20 * time.Millisecond, QueueSize: 16384})
				if err != nil {
					b.Fatal(err)
				}
				enricher.Start()
				opts.Observer = enricher
			}
			p, err := proxy.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go p.Serve(ln) //nolint:errcheck

			client := &fasthttp.HostClient{Addr: ln.Addr().String(), ReadTimeout: 5 * time.Second}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + ln.Addr().String() + "/api/orders?page=2")
			req.Header.Set("openReplaySession.id", "7204916803563247")
			req.Header.Set("User-Agent", "replaylink-bench")
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
			}
			b.StopTimer()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			if bc.logging {
				if err := enricher.Close(ctx); err != nil {
					b.Fatal(err)
				}
				if err := shipper.Close(ctx); err != nil {
					b.Fatal(err)
				}
				if st := shipper.Stats(); st.Queued == 0 || st.Shipped != st.Queued {
					b.Fatalf("documents: queued %d, shipped %d, dropped %d", st.Queued, st.Shipped, st.Dropped)
				}
			}
		})
	}
}
