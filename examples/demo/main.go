// Command demo-backend is the small backend `make run` puts replaylink in
// front of. It knows nothing of OpenReplay: it logs like any Go service, and
// /api/cart fails with a 500 and a stack trace on stderr, which replaylink
// ties to the session of the request that caused it.
//
// Go cannot be hooked from outside as Python and Node are, so it logs the
// X-Request-ID replaylink sends with every request (the idiomatic slog way:
// a logger with the id, per request), which makes its lines exact under any
// concurrency.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5050", "address to listen on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) {
		logger(r).Info("said hello", "path", r.URL.Path)
		fmt.Fprintln(w, `{"hello":"world"}`)
	})
	mux.HandleFunc("/api/cart", func(w http.ResponseWriter, r *http.Request) {
		logger(r).Error("checkout failed", "err", "cart_id missing from the session cart")
		fmt.Fprintf(os.Stderr, "panic: cart_id missing (request_id=%s)\n\n%s", r.Header.Get("X-Request-ID"), debug.Stack())
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /api/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		logger(r).Warn("slow request", "ms", 300)
		fmt.Fprintln(w, `{"slow":true}`)
	})
	log.Info("demo backend listening", "addr", *listen)
	srv := &http.Server{Addr: *listen, Handler: withRequestLogger(log, mux), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("listen failed", "err", err)
		os.Exit(1)
	}
}

type loggerKey struct{}

// withRequestLogger gives each request a logger that adds its X-Request-ID
// to every line.
func withRequestLogger(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := log.With("request_id", r.Header.Get("X-Request-ID"))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loggerKey{}, l)))
	})
}

func logger(r *http.Request) *slog.Logger { return r.Context().Value(loggerKey{}).(*slog.Logger) }
