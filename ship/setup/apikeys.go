package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The two API keys setup creates. Names are fixed so a second run finds them.
const (
	WriterKeyName = "replaylink-writer"
	ReaderKeyName = "replaylink-openreplay-reader"
)

// keySpec is one least-privilege API key.
type keySpec struct {
	name    string
	role    string
	indices []string // index privileges on the target
	purpose string
}

// The writer needs index, not just create_doc: a document is written with
// create (a resend meets 409), but a traceback folded in after its error
// document was shipped replaces it, with the index action on a plain index
// and a conditional index (if_seq_no) on a data stream's backing index. With
// create_doc alone every replacement answers 403, which the shipper takes for
// a permission to be fixed outside and retries until it is.
func keySpecs() []keySpec {
	return []keySpec{
		{name: WriterKeyName, role: "replaylink-writer", purpose: "replaylink's shipper",
			indices: []string{"index", "auto_configure", "view_index_metadata"}},
		{name: ReaderKeyName, role: "openreplay-reader", purpose: "OpenReplay's search",
			indices: []string{"read"}},
	}
}

// roleDescriptors is the body part that limits a key: cluster monitor (the
// clients read GET / and cluster health) and the index privileges on the
// target's names only.
func (k keySpec) roleDescriptors(o *Options) map[string]any {
	return map[string]any{k.role: map[string]any{
		"cluster": []string{"monitor"},
		"indices": []any{map[string]any{"names": o.targetNames(), "privileges": k.indices}},
	}}
}

// apiKey is a created key; secret is empty when the key existed already
// (Elasticsearch shows a key's secret only when it is created).
type apiKey struct {
	name, id, secret string
}

// apiKeys creates the writer and reader keys unless active keys of those
// names exist with the same privileges.
func apiKeys(ctx context.Context, n *node, o *Options) (step, []apiKey) {
	const name = "api keys"
	if n.info.openSearch() {
		return fail(name, "OpenSearch has no API keys (its security plugin has users and roles)",
			"drop --api-keys; with the security plugin, give replaylink a user whose role may write (indices:data/write/*) to "+strings.Join(o.targetNames(), ", ")+" and OpenReplay a user that may only read it"), nil
	}
	var keys []apiKey
	var notes []string
	changed := false
	for _, k := range keySpecs() {
		existing, st, ok := findKey(ctx, n, k, o)
		if !ok {
			return st, nil
		}
		if existing != "" {
			keys = append(keys, apiKey{name: k.name, id: existing})
			notes = append(notes, fmt.Sprintf("%s exists (id %s)", k.name, existing))
			continue
		}
		r, err := n.do(ctx, http.MethodPost, "/_security/api_key", map[string]any{
			"name":             k.name,
			"role_descriptors": k.roleDescriptors(o),
			"metadata":         map[string]any{"managed_by": "replaylink setup", "purpose": k.purpose},
		})
		if st, ok := keyCallFailed(name, r, err, "create"); !ok {
			return st, nil
		}
		var created struct {
			ID     string `json:"id"`
			APIKey string `json:"api_key"`
		}
		if err := json.Unmarshal(r.body, &created); err != nil || created.ID == "" || created.APIKey == "" {
			return fail(name, "creating "+k.name+": unreadable answer", "create it by hand (see the README)"), nil
		}
		keys = append(keys, apiKey{name: k.name, id: created.ID, secret: created.APIKey})
		notes = append(notes, fmt.Sprintf("created %s (id %s)", k.name, created.ID))
		changed = true
	}
	return done(name, changed, strings.Join(notes, "; ")), keys
}

// findKey returns the id of an active key named k.name, "" when there is
// none, or a failed step. A key of that name with other privileges than
// k's is a failure: setup never widens or narrows a key silently.
func findKey(ctx context.Context, n *node, k keySpec, o *Options) (string, step, bool) {
	r, err := n.do(ctx, http.MethodGet, "/_security/api_key?name="+url.QueryEscape(k.name)+"&active_only=true", nil)
	if err == nil && r.status == http.StatusNotFound && r.errorType() == "resource_not_found_exception" {
		return "", step{}, true // no key of that name (some versions answer 404)
	}
	if st, ok := keyCallFailed("api keys", r, err, "list"); !ok {
		return "", st, false
	}
	var list struct {
		APIKeys []struct {
			ID              string                     `json:"id"`
			Name            string                     `json:"name"`
			Invalidated     bool                       `json:"invalidated"`
			Expiration      int64                      `json:"expiration"`
			RoleDescriptors map[string]json.RawMessage `json:"role_descriptors"`
		} `json:"api_keys"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		return "", fail("api keys", "listing keys: unreadable answer", "check that --es-url points at Elasticsearch"), false
	}
	want := k.roleDescriptors(o)
	for _, key := range list.APIKeys {
		if key.Invalidated || key.Name != k.name {
			continue
		}
		if key.RoleDescriptors != nil && !sameRoles(key.RoleDescriptors, want) {
			return "", fail("api keys", fmt.Sprintf("API key %s (id %s) exists with other privileges than replaylink needs", k.name, key.ID),
				fmt.Sprintf(`invalidate it (DELETE /_security/api_key {"ids":["%s"]}) and run replaylink setup --api-keys again`, key.ID)), false
		}
		return key.ID, step{}, true
	}
	return "", step{}, true
}

// sameRoles compares role descriptors as Elasticsearch returns them (with
// defaults filled in) with the wanted ones: same roles, cluster privileges,
// and index names and privileges.
func sameRoles(got map[string]json.RawMessage, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	type indexPriv struct {
		Names      []string `json:"names"`
		Privileges []string `json:"privileges"`
	}
	type role struct {
		Cluster []string    `json:"cluster"`
		Indices []indexPriv `json:"indices"`
	}
	for name, w := range want {
		raw, ok := got[name]
		if !ok {
			return false
		}
		wb, _ := json.Marshal(w)
		var g, wr role
		if json.Unmarshal(raw, &g) != nil || json.Unmarshal(wb, &wr) != nil {
			return false
		}
		norm := func(r *role) {
			slices.Sort(r.Cluster)
			for i := range r.Indices {
				slices.Sort(r.Indices[i].Names)
				slices.Sort(r.Indices[i].Privileges)
			}
		}
		norm(&g)
		norm(&wr)
		if !slices.Equal(g.Cluster, wr.Cluster) || len(g.Indices) != len(wr.Indices) {
			return false
		}
		for i := range g.Indices {
			if !slices.Equal(g.Indices[i].Names, wr.Indices[i].Names) || !slices.Equal(g.Indices[i].Privileges, wr.Indices[i].Privileges) {
				return false
			}
		}
	}
	return true
}

// keyCallFailed turns a failed security API call into a step that names
// the cause and the fix.
func keyCallFailed(name string, r reply, err error, verb string) (step, bool) {
	switch {
	case err != nil:
		return fail(name, verb+" API keys: "+err.Error(), "check that the node is reachable and run setup again"), false
	case r.ok():
		return step{}, true
	case r.status == http.StatusForbidden:
		return fail(name, verb+" API keys: 403 "+r.reason(),
			"the credentials lack the cluster privilege manage_api_key (and must hold every privilege they hand on: monitor, and index, auto_configure, view_index_metadata, read on the target); run setup as a user that has them, e.g. elastic"), false
	case securityOff(r):
		return fail(name, "API keys are unavailable: "+r.reason(),
			"API keys need Elasticsearch security (xpack.security.enabled: true); enable it, or drop --api-keys and give OpenReplay credentials by hand"), false
	}
	return fail(name, fmt.Sprintf("%s API keys: %d %s", verb, r.status, r.reason()), "see the reason above"), false
}

// securityOff recognises a node without the security feature: Elasticsearch
// with xpack.security disabled ("Security must be explicitly enabled...") or
// a node without the API at all ("no handler found for uri").
func securityOff(r reply) bool {
	reason := strings.ToLower(r.reason())
	return strings.Contains(reason, "no handler found") ||
		strings.Contains(reason, "security") && (strings.Contains(reason, "enable") || strings.Contains(reason, "disabled"))
}
