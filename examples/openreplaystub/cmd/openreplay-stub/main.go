// Command openreplay-stub serves package openreplaystub: a stand-in for
// OpenReplay's ingest endpoint so the demo page's tracker can start a session
// without an OpenReplay installation. Point the tracker's ingestPoint at
// http://HOST:9000/ingest and give replaylink the same token secret.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/replaylink/replaylink/examples/openreplaystub"
)

func main() {
	listen := flag.String("listen", ":9000", "address to listen on")
	flag.Parse()
	secret := os.Getenv("OPENREPLAY_TOKEN_SECRET")
	if secret == "" {
		log.Fatal("openreplay-stub: set OPENREPLAY_TOKEN_SECRET (the same value as replaylink's REPLAYLINK_OPENREPLAY_TOKEN_SECRET)")
	}
	srv := &http.Server{Addr: *listen, Handler: openreplaystub.New(secret), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("openreplay-stub: ingest point http://%s/ingest", *listen)
	log.Fatal(srv.ListenAndServe())
}
