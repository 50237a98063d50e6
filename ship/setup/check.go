package setup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Exit codes of Check and Run (`replaylink check`, `replaylink setup`).
const (
	ExitOK            = 0
	ExitUnreachable   = 3 // the node could not be reached
	ExitUnauthorized  = 4 // the node refused the credentials (401)
	ExitMisconfigured = 5 // reached and authenticated, but something on the path is wrong
)

// OpenReplayIndex is the index OpenReplay's backend searches, whatever its
// "Indexes" setting says.
const OpenReplayIndex = "logs"

// Check walks the path a document takes, from replaylink to OpenReplay's
// search, and prints one line per step with ok or the cause and a fix:
// node reachable, auth accepted, version, cluster health, template present, probe written,
// refresh, found by OpenReplay's query, probe deleted. It stops at the first
// failure, as later steps depend on earlier ones (except that a probe
// that was written is always deleted). It returns ExitOK only when every
// step passed. Credentials are never printed.
func Check(ctx context.Context, w io.Writer, o Options) int {
	rep := &reporter{w: w}
	c := connect(ctx, &o)
	for _, s := range []step{c.reachable, c.auth, c.version} {
		if rep.print(s) {
			return c.exit
		}
	}
	n := c.node
	if rep.print(clusterHealth(ctx, n, &o)) {
		return ExitMisconfigured
	}
	if rep.print(templatePresent(ctx, n, &o)) || rep.print(targetMappings(ctx, n, &o)) {
		return ExitMisconfigured
	}
	session := syntheticSession()
	id := "replaylink-check-" + session
	if rep.print(writeProbe(ctx, n, &o, session, id)) {
		return ExitMisconfigured
	}
	failed := rep.print(refresh(ctx, n, &o))
	found := ""
	if !failed {
		var s step
		s, found = openReplayFinds(ctx, n, &o, session, id)
		failed = rep.print(s)
	}
	// The probe is deleted whatever the search found.
	if rep.print(deleteProbe(ctx, n, &o, id, found)) || failed {
		return ExitMisconfigured
	}
	fmt.Fprintf(w, "all checks passed: OpenReplay will find replaylink's documents of its sessions in %s\n", OpenReplayIndex)
	return ExitOK
}

// syntheticSession is a session id no real replay can have: 20 digits from
// 1999..., above the largest uint64 that session ids are.
func syntheticSession() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("1999%016d", binary.BigEndian.Uint64(b[:])%1e16)
}

// fieldTypes are the mappings OpenReplay and lookup depend on.
var fieldTypes = []struct {
	field string
	types []string // accepted types
	why   string
}{
	{"message", []string{"text", "match_only_text"}, "OpenReplay's match_phrase needs it analysed"},
	{"@timestamp", []string{"date", "date_nanos"}, "OpenReplay's player orders by it"},
	{"utc_time", []string{"date", "date_nanos"}, "lookup sorts by it"},
	{"level", []string{"keyword", "constant_keyword"}, "lookup filters by it"},
	{"openReplaySession.id", []string{"keyword"}, "lookup's term query needs it whole"},
}

// templatePresent checks that an index template gives the target
// replaylink's mappings. It asks the node which template would apply
// rather than looking one up by name, so any template that does the job
// counts.
func templatePresent(ctx context.Context, n *node, o *Options) step {
	const name = "template present"
	target := o.writeName()
	r, err := n.do(ctx, http.MethodPost, "/_index_template/_simulate_index/"+url.PathEscape(target), nil)
	if err != nil {
		return fail(name, err.Error(), "run check again")
	}
	if !r.ok() {
		return fail(name, fmt.Sprintf("simulating the template of %s: %d %s", target, r.status, r.reason()), privilegeFix(r, "the cluster privilege manage_index_templates (or monitor)"))
	}
	var sim struct {
		Template struct {
			Mappings map[string]any `json:"mappings"`
		} `json:"template"`
	}
	_ = json.Unmarshal(r.body, &sim)
	if len(sim.Template.Mappings) == 0 {
		return fail(name, "no index template applies to "+target, "run replaylink setup (it installs the template)")
	}
	if bad := wrongTypes(func(f string) string { return mappedType(sim.Template.Mappings, f) }); bad != "" {
		return fail(name, "the template for "+target+" maps "+bad, "run replaylink setup to install replaylink's template")
	}
	return step{name: name, outcome: OK, note: "an index template gives " + target + " replaylink's mappings"}
}

// targetMappings checks the mappings the target has: an index made before
// replaylink's template keeps the ones it got then.
func targetMappings(ctx context.Context, n *node, o *Options) step {
	const name = "target mappings"
	target := o.writeName()
	fields := make([]string, len(fieldTypes))
	for i, f := range fieldTypes {
		fields[i] = f.field
	}
	r, err := n.do(ctx, http.MethodGet, "/"+url.PathEscape(target)+"/_mapping/field/"+strings.Join(fields, ","), nil)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run check again")
	case r.status == http.StatusNotFound:
		return step{name: name, outcome: OK, note: target + " does not exist yet; the template will map it"}
	case !r.ok():
		return fail(name, fmt.Sprintf("reading the mappings of %s: %d %s", target, r.status, r.reason()), privilegeFix(r, "view_index_metadata on "+target))
	}
	// {index: {mappings: {field: {full_name, mapping: {leaf: {type}}}}}}
	var got map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	_ = json.Unmarshal(r.body, &got)
	for index, m := range got {
		bad := wrongTypes(func(f string) string {
			fm, ok := m.Mappings[f]
			if !ok {
				return ""
			}
			for _, leaf := range fm.Mapping {
				return leaf.Type
			}
			return ""
		})
		if bad != "" {
			return fail(name, "index "+index+" maps "+bad+" (it was made before replaylink's template)",
				"move its documents to a new index (reindex) and delete it, then run replaylink setup; or give another --index")
		}
	}
	return step{name: name, outcome: OK, note: target + " has replaylink's mappings"}
}

// wrongTypes names the first field that typeOf says has a wrong type; a
// field not mapped yet is fine in an index (it is mapped by the template
// when it comes), but not in a template.
func wrongTypes(typeOf func(field string) string) string {
	for _, f := range fieldTypes {
		t := typeOf(f.field)
		if t == "" {
			continue
		}
		ok := false
		for _, want := range f.types {
			ok = ok || t == want
		}
		if !ok {
			return fmt.Sprintf("%s as %s, not %s (%s)", f.field, t, f.types[0], f.why)
		}
	}
	return ""
}

// mappedType finds a field's type in mappings, whose properties may nest
// objects or use dotted names.
func mappedType(mappings map[string]any, field string) string {
	props, _ := mappings["properties"].(map[string]any)
	for props != nil {
		if m, ok := props[field].(map[string]any); ok {
			t, _ := m["type"].(string)
			return t
		}
		head, rest, ok := strings.Cut(field, ".")
		if !ok {
			return ""
		}
		obj, _ := props[head].(map[string]any)
		props, _ = obj["properties"].(map[string]any)
		field = rest
	}
	return ""
}

func writeProbe(ctx context.Context, n *node, o *Options, session, id string) step {
	const name = "write probe"
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	doc := map[string]any{
		"message":              "[openReplaySession.id=" + session + "] replaylink check: probe document, deleted right after",
		"@timestamp":           ts,
		"utc_time":             ts,
		"level":                "info",
		"tags":                 []string{"replaylink-check"},
		"openReplaySession.id": session,
		"event.dataset":        "replaylink.check",
	}
	target := o.writeName()
	r, err := n.do(ctx, http.MethodPut, "/"+url.PathEscape(target)+"/_create/"+id, doc)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run check again")
	case r.errorType() == "index_not_found_exception":
		return fail(name, target+" does not exist and may not be created", "run replaylink setup (it creates the write target)")
	case !r.ok():
		return fail(name, fmt.Sprintf("writing to %s: %d %s", target, r.status, r.reason()), privilegeFix(r, "index on "+target))
	}
	return step{name: name, outcome: OK, note: "session " + session + " in " + target}
}

func refresh(ctx context.Context, n *node, o *Options) step {
	const name = "refresh"
	r, err := n.do(ctx, http.MethodPost, "/"+url.PathEscape(o.writeName())+"/_refresh", nil)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run check again")
	case r.status == http.StatusForbidden:
		// A writer-only key may not refresh; the node refreshes every second anyway.
		time.Sleep(1500 * time.Millisecond)
		return step{name: name, outcome: OK, note: "not allowed to refresh (needs maintenance on " + o.writeName() + "); waited for the periodic refresh"}
	case !r.ok():
		return fail(name, fmt.Sprintf("%d %s", r.status, r.reason()), "see the reason above")
	}
	return step{name: name, outcome: OK}
}

// openReplayFinds runs the search OpenReplay's backend runs for a session,
// and returns the index of the probe it found.
func openReplayFinds(ctx context.Context, n *node, o *Options, session, id string) (step, string) {
	const name = "openreplay query"
	query := map[string]any{
		"query": map[string]any{"match_phrase": map[string]any{"message": "openReplaySession.id=" + session}},
		"size":  1000,
	}
	r, err := n.do(ctx, http.MethodPost, "/"+OpenReplayIndex+"/_search", query)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run check again"), ""
	case r.errorType() == "index_not_found_exception":
		return fail(name, "OpenReplay searches the index "+OpenReplayIndex+", which does not exist",
			"use --index "+OpenReplayIndex+" (the default), or point an alias named "+OpenReplayIndex+" at your index"), ""
	case !r.ok():
		return fail(name, fmt.Sprintf("searching %s: %d %s", OpenReplayIndex, r.status, r.reason()), privilegeFix(r, "read on "+OpenReplayIndex)), ""
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Index  string         `json:"_index"`
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		return fail(name, "unreadable search answer: "+err.Error(), "check that --es-url is Elasticsearch's HTTP endpoint"), ""
	}
	for _, h := range res.Hits.Hits {
		if h.ID != id {
			continue
		}
		// What OpenReplay's player reads of each hit.
		level, _ := h.Source["level"].(string)
		if _, ok := h.Source["@timestamp"]; !ok || level != strings.ToLower(level) || level == "" {
			return fail(name, "the probe was found but lacks @timestamp or a lowercase level", "report this as a replaylink bug"), h.Index
		}
		return step{name: name, outcome: OK, note: fmt.Sprintf("match_phrase openReplaySession.id=%s on %s found the probe", session, OpenReplayIndex)}, h.Index
	}
	if o.Index != OpenReplayIndex {
		return fail(name, "OpenReplay searches only the index "+OpenReplayIndex+", but replaylink writes to "+o.Index,
			"use --index "+OpenReplayIndex+" (the default), or add "+o.Index+" to an alias named "+OpenReplayIndex), ""
	}
	return fail(name, fmt.Sprintf("match_phrase openReplaySession.id=%s on %s did not find the probe", session, OpenReplayIndex),
		"message must be a text field: run replaylink setup, and check 'template present' above"), ""
}

// deleteProbe removes the probe: from the index the search found it in
// (a data stream's backing index), or else by id from the target.
func deleteProbe(ctx context.Context, n *node, o *Options, id, index string) step {
	const name = "delete probe"
	var r reply
	var err error
	if index != "" {
		r, err = n.do(ctx, http.MethodDelete, "/"+url.PathEscape(index)+"/_doc/"+id+"?refresh=true", nil)
	} else {
		r, err = n.do(ctx, http.MethodPost, "/"+url.PathEscape(o.writeName())+"/_delete_by_query?refresh=true",
			map[string]any{"query": map[string]any{"ids": map[string]any{"values": []string{id}}}})
	}
	switch {
	case err != nil:
		return fail(name, err.Error(), "delete the document "+id+" from "+o.writeName()+" by hand")
	case !r.ok():
		return fail(name, fmt.Sprintf("%d %s", r.status, r.reason()), privilegeFix(r, "delete on "+o.writeName())+"; then delete the document "+id+" by hand")
	}
	return step{name: name, outcome: OK}
}
