package setup

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/replaylink/replaylink/internal/estest"
)

func TestHealthStep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       health
		outcome Outcome
		want    []string // in note and fix
	}{
		{"green", health{Status: "green", Nodes: 3, DataNodes: 3}, OK, []string{"green: 3 node(s), 3 holding data"}},
		{"green, moving", health{Status: "green", Nodes: 3, DataNodes: 3, Relocating: 2}, OK, []string{"2 relocating"}},
		{"yellow, one data node", health{Status: "yellow", Nodes: 1, DataNodes: 1, Unassigned: 4}, Warning,
			[]string{"4 replica shard(s) unassigned", "one data node cannot hold replicas", `PUT /logs/_settings {"index.number_of_replicas":0}`}},
		{"yellow, a node away", health{Status: "yellow", Nodes: 2, DataNodes: 2, Unassigned: 3, Initializing: 1}, Warning,
			[]string{"yellow: 2 node(s)", "1 shard(s) initializing", "turns green once replicas are placed", "allocation/explain"}},
		{"red", health{Status: "red", Nodes: 1, DataNodes: 1, Unassigned: 2}, Failed,
			[]string{"a primary among them", "cannot be written", "bring back the node", "allocation/explain"}},
		{"unknown", health{Status: "purple"}, Failed, []string{`unknown health "purple"`}},
	} {
		s := tc.h.step("logs")
		if s.outcome != tc.outcome {
			t.Errorf("%s: outcome %s, want %s (%s)", tc.name, s.outcome, tc.outcome, s.note)
		}
		for _, w := range tc.want {
			if !strings.Contains(s.note+" fix: "+s.fix, w) {
				t.Errorf("%s: %q lacks %q", tc.name, s.note+" fix: "+s.fix, w)
			}
		}
	}
}

// TestCheckReportsClusterHealth: on the real node (one data node, shared by
// other tests whose indices may have replicas) check reports green, or
// yellow with the fix for one data node; either way it passes.
func TestCheckReportsClusterHealth(t *testing.T) {
	esURL := estest.URL(t)
	o := configured(Options{})
	o.Client.URLs = []string{esURL}
	var out bytes.Buffer
	Check(context.Background(), &out, o)
	got := outcomes(out.String())["cluster health"]
	switch got {
	case "ok":
		if !strings.Contains(out.String(), "cluster health:    ok: green: 1 node(s), 1 holding data") {
			t.Errorf("output:\n%s", out.String())
		}
	case "warning":
		if !strings.Contains(out.String(), "one data node cannot hold replicas") {
			t.Errorf("yellow on one node without its fix:\n%s", out.String())
		}
	default:
		t.Errorf("cluster health: %q\n%s", got, out.String())
	}
}
