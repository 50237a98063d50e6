package main

import (
	"net/http"

	"github.com/VictoriaMetrics/metrics"

	"github.com/replaylink/replaylink/admin"
)

// adminRoutes are the handlers of the admin listener, which is never the
// proxy's port: health and metrics always, lookup and ingest behind the
// access policy (token, loopback), and no request that changes state from a
// web page of another origin on any route (admin.SameOriginWrites).
type adminRoutes struct {
	ready   func() bool
	lookup  http.Handler // /sessions/, /requests/; nil when off
	ingest  http.Handler // /ingest; nil when off
	protect func(http.Handler) http.Handler
}

func (a adminRoutes) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// Readiness never depends on Elasticsearch: the spool absorbs its outages.
		if a.ready != nil && !a.ready() {
			http.Error(w, "no upstream reachable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metrics.WritePrometheus(w, true)
	})
	protect := a.protect
	if protect == nil {
		protect = func(h http.Handler) http.Handler { return h }
	}
	if a.lookup != nil {
		mux.Handle("/sessions/", protect(a.lookup))
		mux.Handle("/requests/", protect(a.lookup))
	}
	if a.ingest != nil {
		mux.Handle("/ingest", protect(a.ingest))
	}
	return admin.SameOriginWrites(mux)
}
