package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/ship"
)

// installTemplate installs replaylink's index template (ship owns its
// content, so that set-up and a starting replaylink install the same one).
func installTemplate(ctx context.Context, n *node, o *Options) step {
	const name = "index template"
	t := o.target()
	changed, err := ship.InstallTemplate(ctx, n.es, t)
	if err != nil {
		return fail(name, err.Error(), shipFix(err, "the cluster privilege manage_index_templates"))
	}
	return done(name, changed, t.TemplateName()+" for "+t.WriteName())
}

// writeTarget creates the index, or the data stream and its alias, now,
// so the template's mappings apply before the first document.
func writeTarget(ctx context.Context, n *node, o *Options) step {
	const name = "write target"
	t := o.target()
	changed, err := ship.EnsureWriteTarget(ctx, n.es, t)
	if err != nil {
		privilege := "create_index and view_index_metadata on " + t.Index
		if t.DataStream {
			privilege = "create_index, view_index_metadata and manage on " + t.WriteName() + " and " + t.Index
		}
		return fail(name, err.Error(), shipFix(err, privilege))
	}
	if t.DataStream {
		return done(name, changed, "data stream "+t.WriteName()+" with alias "+t.Index)
	}
	return done(name, changed, "index "+t.Index)
}

// shipFix says what to do about an error of ship's set-up functions.
func shipFix(err error, privilege string) string {
	var re *esclient.ResponseError
	if errors.As(err, &re) {
		return privilegeFix(reply{status: re.Status}, privilege)
	}
	return "see the cause above; then run setup again"
}

// StarterID is the _id of the starter document, fixed so that setup writes
// it once.
const StarterID = "replaylink-setup-starter"

// starterDoc writes one document, so that OpenReplay's "add integration"
// test (a search of {"size":1} on logs) finds something. It carries no
// session, so no replay ever shows it.
func starterDoc(ctx context.Context, n *node, o *Options, now time.Time) step {
	const name = "starter document"
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	doc := map[string]any{
		"message":       "replaylink setup: starter document, so OpenReplay's integration test finds the index " + o.Index,
		"@timestamp":    ts,
		"utc_time":      ts,
		"level":         "info",
		"tags":          []string{"replaylink-setup"},
		"event.dataset": "replaylink.setup",
	}
	target := o.writeName()
	r, err := n.do(ctx, http.MethodPut, "/"+url.PathEscape(target)+"/_create/"+StarterID+"?refresh=true", doc)
	switch {
	case err != nil:
		return fail(name, err.Error(), "run setup again")
	case r.status == http.StatusConflict:
		return done(name, false, "present in "+target)
	case !r.ok():
		return fail(name, fmt.Sprintf("writing to %s: %d %s", target, r.status, r.reason()), privilegeFix(r, "index on "+target))
	}
	return done(name, true, "written to "+target)
}
