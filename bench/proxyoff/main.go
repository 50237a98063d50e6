// Command proxyoff is replaylink with logging off, for make bench's
// "logging off" baseline. The binary has no such switch (every request
// becomes an access document), so this is the same proxy package with the
// binary's defaults and no Observer: no enrich, no spool, no shipping. The
// difference between it and `replaylink serve` is the whole cost of
// recording requests.
//
//	proxyoff -listen 127.0.0.1:18090 -upstream http://127.0.0.1:18001
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/replaylink/replaylink/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "address to listen on")
	upstream := flag.String("upstream", "", "backend base URL")
	flag.Parse()

	// The binary's defaults (config/config.go), mapped as cmd/replaylink does.
	p, err := proxy.New(proxy.Options{
		Upstreams:             []string{*upstream},
		ConnectTimeout:        5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleTimeout:           90 * time.Second,
		ClientHeaderTimeout:   30 * time.Second,
		MaxHeaderBytes:        64 << 10,
		ClientBodyTimeout:     60 * time.Second,
		ClientBodyMinRate:     16 << 10,
		MaxConnsPerClient:     1024,
		MaxConnsPerUpstream:   4096,
		MaxFails:              3,
		FailCooldown:          10 * time.Second,
		CORSAddSessionHeader:  true,
		ErrorBodyBytes:        8 << 10,
		Sessions:              proxy.SessionOptions{Sources: []proxy.ConfiguredSource{proxy.LookInHeader, proxy.LookInToken, proxy.LookInBaggage}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxyoff:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxyoff:", err)
		os.Exit(2)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	p.Serve(ln)
}
