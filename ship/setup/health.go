package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// clusterHealth reports the cluster's health as check's "cluster health"
// line, with what to do about anything but green:
//
//   - red: a primary shard has no node, so the documents routed to it cannot
//     be written (the shipper retries them until it comes back): the step
//     fails;
//   - yellow: every primary is assigned, so documents go in, but a replica
//     is not, so losing one more node can lose documents: a warning. On a
//     cluster of one data node that is a replica that can never be placed
//     (replaylink's template asks for none there; --es-replicas);
//   - relocating or initializing shards are said, not judged.
func clusterHealth(ctx context.Context, n *node, o *Options) step {
	const name = "cluster health"
	r, err := n.do(ctx, http.MethodGet, "/_cluster/health", nil)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run check again")
	case !r.ok():
		return fail(name, fmt.Sprintf("reading the cluster's health: %d %s", r.status, r.reason()), privilegeFix(r, "the cluster privilege monitor"))
	}
	var h health
	if err := json.Unmarshal(r.body, &h); err != nil {
		return fail(name, "unreadable health answer: "+err.Error(), "check that --es-url is Elasticsearch's HTTP endpoint")
	}
	return h.step(o.writeName())
}

// health is what _cluster/health says.
type health struct {
	Status       string `json:"status"`
	Nodes        int    `json:"number_of_nodes"`
	DataNodes    int    `json:"number_of_data_nodes"`
	Unassigned   int    `json:"unassigned_shards"`
	Initializing int    `json:"initializing_shards"`
	Relocating   int    `json:"relocating_shards"`
}

// step judges the health; target names the write target in the fixes.
func (h health) step(target string) step {
	const name = "cluster health"
	nodes := fmt.Sprintf("%d node(s), %d holding data", h.Nodes, h.DataNodes)
	moving := ""
	if h.Initializing+h.Relocating > 0 {
		moving = fmt.Sprintf(", %d shard(s) initializing and %d relocating", h.Initializing, h.Relocating)
	}
	explain := "GET /_cluster/allocation/explain says why a shard is unassigned"
	switch h.Status {
	case "green":
		return step{name: name, outcome: OK, note: "green: " + nodes + moving}
	case "yellow":
		fix := "a node may be away or restarting: it turns green once replicas are placed; " + explain
		if h.DataNodes <= 1 {
			fix = fmt.Sprintf("one data node cannot hold replicas: run replaylink setup (--es-replicas auto gives new indices none) and set index.number_of_replicas to 0 on those that have them: PUT /%s/_settings {\"index.number_of_replicas\":0}; or add data nodes", url.PathEscape(target))
		}
		return step{name: name, outcome: Warning, note: fmt.Sprintf("yellow: %s, %d replica shard(s) unassigned%s: documents go in, but losing a node can lose some", nodes, h.Unassigned, moving), fix: fix}
	case "red":
		return fail(name, fmt.Sprintf("red: %s, %d shard(s) unassigned, a primary among them%s: documents routed to it cannot be written (replaylink keeps them in its spool and retries)", nodes, h.Unassigned, moving),
			"bring back the node(s) that held it, or free disk space; "+explain)
	}
	return fail(name, fmt.Sprintf("unknown health %q: %s", h.Status, nodes), "check that --es-url is Elasticsearch's HTTP endpoint")
}
