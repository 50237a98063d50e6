package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// ILMPolicyName is the ILM policy setup writes where data-stream lifecycles
// are not available (Elasticsearch before 8.11).
const ILMPolicyName = "replaylink-logs"

// retention makes the node delete documents older than o.Retention, the way
// the node and target allow:
//
//   - data stream on Elasticsearch 8.11+: the data stream lifecycle's
//     data_retention (the node rolls over and deletes by itself);
//   - data stream on older Elasticsearch: an ILM policy (roll over daily,
//     delete a backing index once it is older than the retention) attached to
//     the data stream's backing indices; it lasts only if the index template
//     names it too (index.lifecycle.name), which the step checks;
//   - plain index on Elasticsearch: an ILM policy can only delete an index
//     whole, which would wipe the newest documents with the oldest, so setup
//     leaves the index alone and says how to get retention (--data-stream);
//   - data stream on OpenSearch: an ISM policy (Index State Management, the
//     plugin OpenSearch's distribution ships) that rolls over daily and
//     deletes a backing index once its rollover is older than the
//     retention, attached to the backing indices there are and, through
//     its ism_template, to those rollovers make (ismRetention).
func retention(ctx context.Context, n *node, o *Options) step {
	const name = "retention"
	keep := esDuration(o.Retention)
	switch {
	case n.info.openSearch() && o.DataStream:
		return ismRetention(ctx, n, keep)
	case n.info.openSearch():
		return step{name: name, outcome: Skipped, note: fmt.Sprintf(
			"the plain index %s keeps documents until they are deleted (an ISM policy can only delete whole indices); for retention of %s, run setup with --data-stream (and run replaylink with it too)", o.Index, keep)}
	case !o.DataStream:
		return step{name: name, outcome: Skipped, note: fmt.Sprintf(
			"the plain index %s keeps documents until they are deleted (ILM can only delete whole indices); for retention of %s, run setup with --data-stream (and run replaylink with it too)", o.Index, keep)}
	case n.info.atLeast(8, 11):
		return lifecycleRetention(ctx, n, keep)
	}
	return ilmRetention(ctx, n, keep)
}

// esDuration writes d in Elasticsearch's time units: 720h -> 30d.
func esDuration(d time.Duration) string {
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

func lifecycleRetention(ctx context.Context, n *node, keep string) step {
	const name = "retention"
	path := "/_data_stream/" + DataStreamName + "/_lifecycle"
	r, err := n.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fail(name, err.Error(), "run setup again")
	}
	if !r.ok() {
		return fail(name, fmt.Sprintf("reading the lifecycle of %s: %d %s", DataStreamName, r.status, r.reason()), privilegeFix(r, "view_index_metadata on "+DataStreamName))
	}
	var got struct {
		DataStreams []struct {
			Lifecycle struct {
				Enabled       *bool  `json:"enabled"`
				DataRetention string `json:"data_retention"`
			} `json:"lifecycle"`
		} `json:"data_streams"`
	}
	_ = json.Unmarshal(r.body, &got)
	if len(got.DataStreams) == 1 {
		lc := got.DataStreams[0].Lifecycle
		if lc.DataRetention == keep && (lc.Enabled == nil || *lc.Enabled) {
			return done(name, false, "data stream lifecycle keeps "+keep)
		}
	}
	r, err = n.do(ctx, http.MethodPut, path, map[string]any{"data_retention": keep})
	if err != nil {
		return fail(name, err.Error(), "run setup again")
	}
	if !r.ok() {
		return fail(name, fmt.Sprintf("setting the lifecycle of %s: %d %s", DataStreamName, r.status, r.reason()), privilegeFix(r, "manage_data_stream_lifecycle on "+DataStreamName))
	}
	return done(name, true, "data stream lifecycle set to keep "+keep)
}

// ilmPolicy rolls the data stream over daily (or at 50 GB a shard) and
// deletes a backing index once its newest documents are older than keep,
// so documents live between keep and keep plus a day.
func ilmPolicy(keep string) map[string]any {
	return map[string]any{"policy": map[string]any{"phases": map[string]any{
		"hot": map[string]any{"actions": map[string]any{
			"rollover": map[string]any{"max_age": "1d", "max_primary_shard_size": "50gb"},
		}},
		"delete": map[string]any{"min_age": keep, "actions": map[string]any{"delete": map[string]any{}}},
	}}}
}

func ilmRetention(ctx context.Context, n *node, keep string) step {
	const name = "retention"
	changed := false
	r, err := n.do(ctx, http.MethodGet, "/_ilm/policy/"+ILMPolicyName, nil)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run setup again")
	case r.ok() && ilmMatches(r.body, keep):
	case r.ok() || r.status == http.StatusNotFound:
		r, err = n.do(ctx, http.MethodPut, "/_ilm/policy/"+ILMPolicyName, ilmPolicy(keep))
		if err != nil {
			return fail(name, err.Error(), "run setup again")
		}
		if !r.ok() {
			return fail(name, fmt.Sprintf("writing ILM policy %s: %d %s", ILMPolicyName, r.status, r.reason()), ilmFix(r))
		}
		changed = true
	default:
		return fail(name, fmt.Sprintf("reading ILM policy %s: %d %s", ILMPolicyName, r.status, r.reason()), ilmFix(r))
	}

	// Attach the policy to the backing indices that do not have it yet.
	r, err = n.do(ctx, http.MethodGet, "/"+DataStreamName+"/_settings/index.lifecycle.name", nil)
	if err != nil {
		return fail(name, err.Error(), "run setup again")
	}
	if !r.ok() {
		return fail(name, fmt.Sprintf("reading the settings of %s: %d %s", DataStreamName, r.status, r.reason()), privilegeFix(r, "view_index_metadata on "+DataStreamName))
	}
	var settings map[string]struct {
		Settings struct {
			Index struct {
				Lifecycle struct {
					Name string `json:"name"`
				} `json:"lifecycle"`
			} `json:"index"`
		} `json:"settings"`
	}
	_ = json.Unmarshal(r.body, &settings)
	attached := true
	for _, s := range settings {
		attached = attached && s.Settings.Index.Lifecycle.Name == ILMPolicyName
	}
	if !attached {
		r, err = n.do(ctx, http.MethodPut, "/"+DataStreamName+"/_settings", map[string]any{"index.lifecycle.name": ILMPolicyName})
		if err != nil {
			return fail(name, err.Error(), "run setup again")
		}
		if !r.ok() {
			return fail(name, fmt.Sprintf("attaching ILM policy %s to %s: %d %s", ILMPolicyName, DataStreamName, r.status, r.reason()), privilegeFix(r, "manage_ilm on "+DataStreamName))
		}
		changed = true
	}
	// Backing indices made by later rollovers get their settings from the
	// index template: unless it names the policy, they would keep
	// everything. The data stream reports the policy its template names.
	r, err = n.do(ctx, http.MethodGet, "/_data_stream/"+DataStreamName, nil)
	if err != nil {
		return fail(name, err.Error(), "run setup again")
	}
	var ds struct {
		DataStreams []struct {
			ILMPolicy string `json:"ilm_policy"`
		} `json:"data_streams"`
	}
	_ = json.Unmarshal(r.body, &ds)
	if !r.ok() || len(ds.DataStreams) != 1 || ds.DataStreams[0].ILMPolicy != ILMPolicyName {
		return fail(name, fmt.Sprintf("ILM policy %s is on today's backing indices of %s, but the index template does not name it, so indices made by later rollovers would keep documents forever", ILMPolicyName, DataStreamName),
			fmt.Sprintf(`use Elasticsearch 8.11 or later (data stream lifecycle), or add "index.lifecycle.name": "%s" to the settings of the index template for %s`, ILMPolicyName, DataStreamName))
	}
	return done(name, changed, fmt.Sprintf("ILM policy %s (roll over daily, delete after %s) on %s", ILMPolicyName, keep, DataStreamName))
}

// ilmMatches compares the parts of a stored policy that setup decides.
func ilmMatches(body []byte, keep string) bool {
	var got map[string]struct {
		Policy struct {
			Phases struct {
				Hot struct {
					Actions struct {
						Rollover *struct {
							MaxAge              string `json:"max_age"`
							MaxPrimaryShardSize string `json:"max_primary_shard_size"`
						} `json:"rollover"`
					} `json:"actions"`
				} `json:"hot"`
				Delete *struct {
					MinAge  string `json:"min_age"`
					Actions struct {
						Delete *json.RawMessage `json:"delete"`
					} `json:"actions"`
				} `json:"delete"`
			} `json:"phases"`
		} `json:"policy"`
	}
	if json.Unmarshal(body, &got) != nil {
		return false
	}
	p, ok := got[ILMPolicyName]
	if !ok {
		return false
	}
	ph := p.Policy.Phases
	return ph.Hot.Actions.Rollover != nil && ph.Hot.Actions.Rollover.MaxAge == "1d" && ph.Hot.Actions.Rollover.MaxPrimaryShardSize == "50gb" &&
		ph.Delete != nil && ph.Delete.MinAge == keep && ph.Delete.Actions.Delete != nil
}

func ilmFix(r reply) string {
	if r.status == http.StatusForbidden {
		return "the credentials lack the cluster privilege manage_ilm; run setup as a user that has it"
	}
	if securityOff(r) || r.status == http.StatusBadRequest {
		return "this node has no ILM (it needs Elasticsearch's default distribution); use Elasticsearch 8.11+ for data stream lifecycles"
	}
	return "see the reason above; then run setup again"
}
