package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
)

// ISMPolicyName is the ISM policy setup writes on OpenSearch.
const ISMPolicyName = "replaylink-logs"

// ismPolicy is the ISM policy for the data stream's backing indices: the
// write index rolls over daily (or at 50 GB a primary shard), and a backing
// index is deleted once its rollover is keep old, so documents live between
// keep and keep plus a day, as with ILM on Elasticsearch. Its ism_template
// attaches it to every backing index a rollover makes.
func ismPolicy(keep string) map[string]any {
	return map[string]any{"policy": map[string]any{
		"description":   "replaylink: roll over daily, delete " + keep + " after the rollover",
		"default_state": "hot",
		"states": []any{
			map[string]any{
				"name":        "hot",
				"actions":     []any{map[string]any{"rollover": map[string]any{"min_index_age": "1d", "min_primary_shard_size": "50gb"}}},
				"transitions": []any{map[string]any{"state_name": "delete", "conditions": map[string]any{"min_rollover_age": keep}}},
			},
			map[string]any{
				"name":        "delete",
				"actions":     []any{map[string]any{"delete": map[string]any{}}},
				"transitions": []any{},
			},
		},
		"ism_template": []any{map[string]any{"index_patterns": []any{backingPattern()}, "priority": 200}},
	}}
}

// backingPattern matches the backing indices of the data stream.
func backingPattern() string { return ".ds-" + DataStreamName + "-*" }

func ismRetention(ctx context.Context, n *node, keep string) step {
	const name = "retention"
	const path = "/_plugins/_ism/policies/" + ISMPolicyName
	want := ismPolicy(keep)
	changed := false
	r, err := n.do(ctx, http.MethodGet, path, nil)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run setup again")
	case r.ok():
		var got struct {
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Policy      json.RawMessage `json:"policy"`
		}
		_ = json.Unmarshal(r.body, &got)
		if ismMatches(got.Policy, want["policy"].(map[string]any)) {
			break
		}
		// Replace it, on condition that nobody changed it since it was read.
		r, err = n.do(ctx, http.MethodPut, fmt.Sprintf("%s?if_seq_no=%d&if_primary_term=%d", path, got.SeqNo, got.PrimaryTerm), want)
		if st := ismWritten(name, r, err); st != nil {
			return *st
		}
		changed = true
	case r.status == http.StatusNotFound && r.errorType() != "":
		r, err = n.do(ctx, http.MethodPut, path, want)
		if st := ismWritten(name, r, err); st != nil {
			return *st
		}
		changed = true
	default:
		return fail(name, fmt.Sprintf("reading ISM policy %s: %d %s", ISMPolicyName, r.status, r.reason()), ismFix(r))
	}

	// Attach it to the backing indices there are; ism_template only
	// reaches those made after the policy.
	r, err = n.do(ctx, http.MethodGet, "/_plugins/_ism/explain/"+backingPattern(), nil)
	if err != nil {
		return fail(name, err.Error(), "run setup again")
	}
	if !r.ok() {
		return fail(name, fmt.Sprintf("asking ISM which policy manages %s: %d %s", DataStreamName, r.status, r.reason()), ismFix(r))
	}
	var explain map[string]json.RawMessage
	_ = json.Unmarshal(r.body, &explain)
	var unmanaged, foreign []string
	for index, raw := range explain {
		if index == "total_managed_indices" {
			continue
		}
		var e struct {
			PolicyID *string `json:"index.plugins.index_state_management.policy_id"`
		}
		_ = json.Unmarshal(raw, &e)
		switch {
		case e.PolicyID == nil || *e.PolicyID == "":
			unmanaged = append(unmanaged, index)
		case *e.PolicyID != ISMPolicyName:
			foreign = append(foreign, index+" ("+*e.PolicyID+")")
		}
	}
	if len(foreign) > 0 {
		return fail(name, fmt.Sprintf("backing indices of %s are managed by another ISM policy: %v", DataStreamName, foreign),
			fmt.Sprintf("remove that policy from them (POST /_plugins/_ism/remove/%s) and run setup again, or keep yours and drop --retention's promise", backingPattern()))
	}
	if len(unmanaged) > 0 {
		r, err = n.do(ctx, http.MethodPost, "/_plugins/_ism/add/"+backingPattern(), map[string]any{"policy_id": ISMPolicyName})
		if err != nil {
			return fail(name, err.Error(), "run setup again")
		}
		var added struct {
			Failures      bool `json:"failures"`
			FailedIndices []struct {
				IndexName string `json:"index_name"`
				Reason    string `json:"reason"`
			} `json:"failed_indices"`
		}
		_ = json.Unmarshal(r.body, &added)
		if !r.ok() || added.Failures {
			return fail(name, fmt.Sprintf("attaching ISM policy %s to %s: %d %s %v", ISMPolicyName, backingPattern(), r.status, r.reason(), added.FailedIndices), ismFix(r))
		}
		changed = true
	}
	return done(name, changed, fmt.Sprintf("ISM policy %s (roll over daily, delete %s after the rollover) on %s", ISMPolicyName, keep, DataStreamName))
}

// ismWritten turns the answer to a policy write into a failed step, or nil.
func ismWritten(name string, r reply, err error) *step {
	if err != nil {
		s := fail(name, err.Error(), "run setup again")
		return &s
	}
	if !r.ok() {
		s := fail(name, fmt.Sprintf("writing ISM policy %s: %d %s", ISMPolicyName, r.status, r.reason()), ismFix(r))
		return &s
	}
	return nil
}

// ismMatches compares the parts of a stored policy that setup decides; the
// node adds others (policy_id, schema_version, last_updated_time...).
func ismMatches(stored json.RawMessage, want map[string]any) bool {
	type state struct {
		Name        string `json:"name"`
		Actions     []map[string]json.RawMessage
		Transitions []struct {
			StateName  string            `json:"state_name"`
			Conditions map[string]string `json:"conditions"`
		} `json:"transitions"`
	}
	type policy struct {
		DefaultState string  `json:"default_state"`
		States       []state `json:"states"`
		ISMTemplate  []struct {
			IndexPatterns []string `json:"index_patterns"`
			Priority      int      `json:"priority"`
		} `json:"ism_template"`
	}
	var got, exp policy
	b, _ := json.Marshal(want)
	if json.Unmarshal(stored, &got) != nil || json.Unmarshal(b, &exp) != nil {
		return false
	}
	// The node fills in defaults inside actions (retry, timeout): compare
	// the action names and what setup sets in them.
	actions := func(p *policy) []string {
		var out []string
		for _, s := range p.States {
			for _, a := range s.Actions {
				for k, v := range a {
					if k == "rollover" || k == "delete" {
						var fields map[string]any
						_ = json.Unmarshal(v, &fields)
						out = append(out, fmt.Sprint(s.Name, k, fields["min_index_age"], fields["min_primary_shard_size"]))
					}
				}
			}
		}
		return out
	}
	if !reflect.DeepEqual(actions(&got), actions(&exp)) {
		return false
	}
	for i := range got.States {
		got.States[i].Actions = nil
	}
	for i := range exp.States {
		exp.States[i].Actions = nil
	}
	return reflect.DeepEqual(got, exp)
}

func ismFix(r reply) string {
	switch {
	case r.status == http.StatusForbidden:
		return "the credentials lack the ISM permissions (cluster:admin/opendistro/ism/*); run setup as a user that has them"
	case r.status == http.StatusBadRequest && r.errorType() == "":
		// "no handler found for uri": the node has no ISM plugin.
		return "this node has no Index State Management plugin (opensearch-index-management, in OpenSearch's distribution); install it, or delete old documents with _delete_by_query on @timestamp"
	}
	return "see the reason above; then run setup again"
}
