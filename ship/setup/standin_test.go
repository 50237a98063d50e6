package setup

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// standIn is a request-checking Elasticsearch stand-in for what the test
// node (OpenSearch, no x-pack) cannot do: the security API (API keys) and
// index lifecycle (ILM policies, data stream lifecycles). It answers only
// the requests setup is meant to make, in Elasticsearch's shapes, records
// every request, and fails the test on anything else.
type standIn struct {
	t       *testing.T
	version string
	// apiKey, when set, is the only Authorization accepted ("ApiKey <base64>",
	// scheme in any case).
	apiKey   string
	security bool // the security feature is enabled
	// canManageKeys: the caller holds manage_api_key.
	canManageKeys bool

	mu        sync.Mutex
	requests  []string // "METHOD path"
	keys      []standInKey
	nextID    int
	lifecycle map[string]string // data stream -> data_retention
	policies  map[string]json.RawMessage
	settings  map[string]string // backing index -> index.lifecycle.name
	// templatePolicy is the ILM policy the index template names.
	templatePolicy string
}

type standInKey struct {
	ID, Name, Secret string
	Invalidated      bool
	Roles            json.RawMessage
}

func newStandIn(t *testing.T, version string) (*standIn, *httptest.Server) {
	s := &standIn{t: t, version: version, security: true, canManageKeys: true,
		lifecycle: map[string]string{}, policies: map[string]json.RawMessage{},
		settings: map[string]string{".ds-" + DataStreamName + "-000001": ""}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	answer := func(status int, v any) {
		w.WriteHeader(status)
		if b, ok := v.(string); ok {
			io.WriteString(w, b)
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	esError := func(status int, typ, reason string) {
		answer(status, map[string]any{"error": map[string]any{"type": typ, "reason": reason}, "status": status})
	}
	if scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " "); s.apiKey != "" && (!strings.EqualFold(scheme, "ApiKey") || key != s.apiKey) {
		w.Header().Set("WWW-Authenticate", "ApiKey")
		esError(401, "security_exception", "unable to authenticate with provided credentials and anonymous access is not allowed for this request")
		return
	}
	if r.Body != nil && len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("stand-in: %s %s with a body but Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	p := r.URL.Path
	switch {
	case r.Method == "GET" && p == "/":
		answer(200, map[string]any{"name": "standin", "version": map[string]any{"number": s.version, "build_flavor": "default"}, "tagline": "You Know, for Search"})

	case strings.HasPrefix(p, "/_security/") && !s.security:
		esError(500, "security_exception", "Security must be explicitly enabled when using a [basic] license. Enable security by setting [xpack.security.enabled] to true in the elasticsearch.yml file and restart the node.")
	case strings.HasPrefix(p, "/_security/") && !s.canManageKeys:
		esError(403, "security_exception", "action [cluster:admin/xpack/security/api_key/create] is unauthorized for user [ops]")
	case r.Method == "GET" && p == "/_security/api_key":
		name := r.URL.Query().Get("name")
		if r.URL.Query().Get("active_only") != "true" {
			s.t.Errorf("stand-in: listing keys without active_only=true")
		}
		list := []any{}
		for _, k := range s.keys {
			if k.Name == name && !k.Invalidated {
				list = append(list, map[string]any{"id": k.ID, "name": k.Name, "invalidated": false, "role_descriptors": k.Roles})
			}
		}
		answer(200, map[string]any{"api_keys": list})
	case r.Method == "POST" && p == "/_security/api_key":
		var req struct {
			Name  string          `json:"name"`
			Roles json.RawMessage `json:"role_descriptors"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Name == "" || len(req.Roles) == 0 {
			esError(400, "parse_exception", "bad api key request: "+string(body))
			return
		}
		s.nextID++
		k := standInKey{ID: fmt.Sprintf("key%d", s.nextID), Name: req.Name, Secret: fmt.Sprintf("secret%d", s.nextID), Roles: req.Roles}
		s.keys = append(s.keys, k)
		answer(200, map[string]any{"id": k.ID, "name": k.Name, "api_key": k.Secret, "encoded": "ZW5jb2RlZA=="})

	case p == "/_data_stream/"+DataStreamName+"/_lifecycle" && r.Method == "GET":
		lc := map[string]any{"enabled": true}
		if v := s.lifecycle[DataStreamName]; v != "" {
			lc["data_retention"] = v
		}
		answer(200, map[string]any{"data_streams": []any{map[string]any{"name": DataStreamName, "lifecycle": lc}}})
	case p == "/_data_stream/"+DataStreamName+"/_lifecycle" && r.Method == "PUT":
		var req struct {
			DataRetention string `json:"data_retention"`
		}
		if json.Unmarshal(body, &req) != nil || req.DataRetention == "" {
			esError(400, "x_content_parse_exception", "bad lifecycle: "+string(body))
			return
		}
		s.lifecycle[DataStreamName] = req.DataRetention
		answer(200, `{"acknowledged":true}`)

	case strings.HasPrefix(p, "/_ilm/policy/") && r.Method == "GET":
		name := strings.TrimPrefix(p, "/_ilm/policy/")
		pol, ok := s.policies[name]
		if !ok {
			esError(404, "resource_not_found_exception", "Lifecycle policy not found: "+name)
			return
		}
		answer(200, fmt.Sprintf(`{%q:{"version":1,"modified_date":"2025-01-01T00:00:00Z","policy":%s}}`, name, fillILMDefaults(pol)))
	case strings.HasPrefix(p, "/_ilm/policy/") && r.Method == "PUT":
		var req struct {
			Policy json.RawMessage `json:"policy"`
		}
		if json.Unmarshal(body, &req) != nil || len(req.Policy) == 0 {
			esError(400, "x_content_parse_exception", "bad policy: "+string(body))
			return
		}
		s.policies[strings.TrimPrefix(p, "/_ilm/policy/")] = req.Policy
		answer(200, `{"acknowledged":true}`)
	case p == "/_data_stream/"+DataStreamName && r.Method == "GET":
		ds := map[string]any{"name": DataStreamName, "status": "GREEN", "template": "replaylink-" + DataStreamName}
		if s.templatePolicy != "" {
			ds["ilm_policy"] = s.templatePolicy
		}
		answer(200, map[string]any{"data_streams": []any{ds}})
	case p == "/"+DataStreamName+"/_settings/index.lifecycle.name" && r.Method == "GET":
		out := map[string]any{}
		for idx, pol := range s.settings {
			st := map[string]any{}
			if pol != "" {
				st["index"] = map[string]any{"lifecycle": map[string]any{"name": pol}}
			}
			out[idx] = map[string]any{"settings": st}
		}
		answer(200, out)
	case p == "/"+DataStreamName+"/_settings" && r.Method == "PUT":
		var req map[string]string
		if json.Unmarshal(body, &req) != nil || req["index.lifecycle.name"] == "" {
			esError(400, "illegal_argument_exception", "bad settings: "+string(body))
			return
		}
		for idx := range s.settings {
			s.settings[idx] = req["index.lifecycle.name"]
		}
		answer(200, `{"acknowledged":true}`)

	default:
		s.t.Errorf("stand-in: unexpected request %s %s %s", r.Method, r.URL, body)
		esError(400, "illegal_argument_exception", "the stand-in does not serve "+r.Method+" "+p)
	}
}

// fillILMDefaults adds what Elasticsearch adds to a stored policy (min_age
// 0ms on hot), so the comparison is tested against the real shape.
func fillILMDefaults(pol json.RawMessage) string {
	var m map[string]map[string]map[string]any
	if json.Unmarshal(pol, &m) != nil {
		return string(pol)
	}
	if hot, ok := m["phases"]["hot"]; ok {
		hot["min_age"] = "0ms"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// count returns how many recorded requests start with prefix ("PUT /_ilm").
func (s *standIn) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countPrefixed(s.requests, prefix)
}

// countPrefixed counts the requests ("METHOD path") that start with prefix.
func countPrefixed(requests []string, prefix string) int {
	n := 0
	for _, r := range requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}
