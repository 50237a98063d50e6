package lookup

import (
	"encoding/json"
	"time"

	"github.com/replaylink/replaylink/memstore"
)

// newStore is the real memory store, holding samples.
func newStore(samples ...sample) *memstore.Store {
	m := memstore.New(1000, 1<<20)
	for _, s := range samples {
		m.Add([]byte(s.id), s.src)
	}
	return m
}

// sample is one test document: its _id and its source.
type sample struct {
	id  string
	src []byte
}

const scriptLine = `<script>document.title='pwned'</script><img src=x onerror=alert(1)>`

// sampleSession builds a realistic session: three requests, one failing with
// a traceback, backend lines under them and one outside any request. Access
// documents spell ECS names flat, backend ones nested, as both occur.
func sampleSession(session string, t0 time.Time) []sample {
	ts := func(ms int) string {
		return t0.Add(time.Duration(ms) * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	marker := "[openReplaySession.id=" + session + "] "
	access := func(id, req string, ms int, method, path string, status int, durMS float64, level, msg string, extra map[string]any) sample {
		m := map[string]any{
			"message": marker + msg, "@timestamp": ts(ms), "utc_time": ts(ms), "level": level,
			"tags": []string{"access"}, "openReplaySession.id": session,
			"http.request.method": method, "http.request.id": req, "url.path": path,
			"http.response.status_code": status, "event.duration": int64(durMS * 1e6), "event.dataset": "replaylink.access",
		}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return sample{id, b}
	}
	backend := func(id, req string, ms int, level, logger, msg string, errFields map[string]any) sample {
		m := map[string]any{
			"message": marker + msg, "@timestamp": ts(ms), "utc_time": ts(ms), "level": level,
			"tags": []string{"backend"}, "openReplaySession": map[string]any{"id": session},
			"event": map[string]any{"dataset": "replaylink.backend"}, "log": map[string]any{"logger": logger},
		}
		if req != "" {
			m["http"] = map[string]any{"request": map[string]any{"id": req}}
		}
		if errFields != nil {
			m["error"] = errFields
			m["tags"] = []string{"backend", "error"}
		}
		b, _ := json.Marshal(m)
		return sample{id, b}
	}
	stack := "Traceback (most recent call last):\n  File \"/app/app.py\", line 41, in checkout\n    cart = carts[cart_id]\nKeyError: 'cart_id'"
	return []sample{
		access(session+"-a1", "req-1", 0, "GET", "/api/cart", 200, 12.4, "info", "GET /api/cart -> 200 (12.4 ms)", nil),
		backend(session+"-b1", "req-1", 3, "info", "app", "loaded cart for user 42", nil),
		backend(session+"-b2", "", 150, "warning", "werkzeug", "slow disk: 120 ms", nil),
		access(session+"-a2", "req-2", 400, "POST", "/api/checkout", 500, 48.9, "error", "POST /api/checkout -> 500 (48.9 ms) KeyError: 'cart_id'",
			map[string]any{"tags": []string{"access", "error"}, "error.type": "HTTPError", "error.message": "upstream answered 500"}),
		backend(session+"-b3", "req-2", 420, "error", "app", "Exception on /api/checkout [POST] "+scriptLine,
			map[string]any{"type": "KeyError", "message": "'cart_id' " + scriptLine, "stack_trace": stack}),
		access(session+"-a3", "req-3", 900, "GET", "/api/items/7", 404, 3.1, "warning", "GET /api/items/7 -> 404 (3.1 ms)", nil),
	}
}
