// Package setup is `replaylink setup` and `replaylink check`: it prepares
// Elasticsearch (or OpenSearch) for replaylink and OpenReplay in one
// command, and walks the whole path from a written document to OpenReplay's
// search, one printed line per step, each failure with its cause and fix.
//
// Set-up is idempotent: every step first reads what is there and changes
// only what differs, so a second run prints "unchanged" throughout. Secrets
// given to it are never printed; the API keys it creates are printed once,
// because they must be pasted into OpenReplay and replaylink's environment.
package setup

import (
	"context"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"strings"
	"time"
)

// Run performs the set-up steps against o.Client's node, printing each
// outcome to w, then what to paste into OpenReplay and replaylink's
// environment. It returns the exit code: ExitOK, or Check's codes
// (ExitUnreachable, ExitUnauthorized, ExitMisconfigured for a failed step).
func Run(ctx context.Context, w io.Writer, o Options) int {
	rep := &reporter{w: w}
	c := connect(ctx, &o)
	for _, s := range []step{c.reachable, c.auth, c.version} {
		if s.outcome == Failed {
			rep.print(s)
			return c.exit
		}
	}
	n := c.node
	rep.print(step{name: "node", outcome: OK, note: n.info.String() + " at " + n.address})

	// Each step needs the ones before it: no write target without the
	// template (the index would get guessed mappings), no starter document
	// without a target.
	for _, run := range []func() step{
		func() step { return installTemplate(ctx, n, &o) },
		func() step { return writeTarget(ctx, n, &o) },
		func() step { return targetMappings(ctx, n, &o) },
		func() step { return starterDoc(ctx, n, &o, time.Now()) },
	} {
		if rep.print(run()) {
			fmt.Fprintln(w, "set-up stopped: the next steps need this one; fix it and run replaylink setup again")
			return ExitMisconfigured
		}
	}
	rep.print(retention(ctx, n, &o))
	var keys []apiKey
	if o.APIKeys {
		var s step
		s, keys = apiKeys(ctx, n, &o)
		rep.print(s)
	}
	switch {
	case rep.failed > 0:
		fmt.Fprintf(w, "%d step(s) failed; fix them and run replaylink setup again\n", rep.failed)
	case rep.changed == 0:
		fmt.Fprintln(w, "nothing changed: the node was already set up")
	default:
		fmt.Fprintf(w, "%d step(s) changed the node; a second run will change nothing\n", rep.changed)
	}
	printPaste(w, &o, n.info, keys)
	if rep.failed > 0 {
		return ExitMisconfigured
	}
	return ExitOK
}

// printPaste prints what the user copies next: OpenReplay's Elasticsearch
// form, and replaylink's environment, for the engine setup found.
// OpenReplay's form signs in with an Elasticsearch API key and nothing
// else, and OpenSearch has none: there the block says how OpenReplay and
// replaylink get in instead, never to run setup --api-keys.
func printPaste(w io.Writer, o *Options, node info, keys []apiKey) {
	url := "https://your-elasticsearch:9200"
	if len(o.Client.URLs) > 0 {
		url = redactURL(o.Client.URLs[0])
	}
	var writer, reader *apiKey
	for i := range keys {
		switch keys[i].name {
		case WriterKeyName:
			writer = &keys[i]
		case ReaderKeyName:
			reader = &keys[i]
		}
	}
	withCredentials := o.Client.Username != "" || o.Client.APIKey != ""
	var b strings.Builder
	b.WriteString("\nIn OpenReplay: Preferences > Integrations > Backend Logging > Elasticsearch, enter:\n")
	fmt.Fprintf(&b, "  URL:         %s\n", url)
	switch {
	case node.openSearch():
		b.WriteString("  API KEY ID:  any text (OpenSearch has no API keys; see the note below)\n  API Key:     any text\n")
	case reader != nil && reader.secret != "":
		fmt.Fprintf(&b, "  API KEY ID:  %s\n  API Key:     %s\n", reader.id, reader.secret)
	case reader != nil:
		fmt.Fprintf(&b, "  API KEY ID:  %s\n  API Key:     (shown only when it was created; to get a new one, invalidate the key %s and run setup --api-keys again)\n", reader.id, ReaderKeyName)
	default:
		b.WriteString("  API KEY ID:  the id of a key that may read " + strings.Join(o.targetNames(), ", ") + " (setup --api-keys creates one)\n  API Key:     that key's api_key\n")
	}
	fmt.Fprintf(&b, "  Indexes:     %s\n", OpenReplayIndex)
	b.WriteString("then click Add: its test search finds the starter document.\n")
	if isLoopback(url) {
		fmt.Fprintf(&b, "Note: %s is a loopback address. OpenReplay connects from its own servers, so it reaches this URL only when it runs on this host, outside a container: enter an address of the node that OpenReplay can reach.\n", url)
	}
	if node.openSearch() {
		if withCredentials {
			fmt.Fprintf(&b, "Note: this OpenSearch node wants credentials, and OpenReplay's form can only send an Elasticsearch API key, which OpenSearch does not have. Let OpenReplay read %s anonymously (the security plugin's anonymous access, with a role that may only read %s), or send its requests through a proxy that adds basic auth.\n", OpenReplayIndex, OpenReplayIndex)
		} else {
			b.WriteString("Note: OpenSearch has no API keys. This node answered setup without credentials, so it answers OpenReplay's requests too and ignores the key fields; keep it where only OpenReplay and replaylink reach it.\n")
		}
	}
	if o.Index != OpenReplayIndex {
		fmt.Fprintf(&b, "Note: OpenReplay searches only the index %s, whatever Indexes says; with --index %s it will not find replaylink's documents unless %s is (or is in) an alias named %s.\n", OpenReplayIndex, o.Index, o.Index, OpenReplayIndex)
	}

	b.WriteString("\nreplaylink's environment:\n")
	fmt.Fprintf(&b, "  REPLAYLINK_ES_URL=%s\n", strings.Join(redactAll(o.Client.URLs), ","))
	switch {
	case node.openSearch() && withCredentials:
		fmt.Fprintf(&b, "  REPLAYLINK_ES_USERNAME=<a user of replaylink's own, whose role may write to %s>\n  REPLAYLINK_ES_PASSWORD_FILE=<a file holding its password>\n", strings.Join(o.targetNames(), ", "))
		b.WriteString("  (OpenSearch has no API keys: replaylink signs in with basic auth)\n")
	case node.openSearch():
		b.WriteString("  (no credentials: the node takes requests without them)\n")
	case writer != nil && writer.secret != "":
		fmt.Fprintf(&b, "  REPLAYLINK_ES_API_KEY=%s:%s\n", writer.id, writer.secret)
	case writer != nil:
		fmt.Fprintf(&b, "  REPLAYLINK_ES_API_KEY=%s:<its secret, shown when it was created>\n", writer.id)
	default:
		b.WriteString("  (and credentials that may write to the target: REPLAYLINK_ES_API_KEY, or setup --api-keys)\n")
	}
	if o.Index != OpenReplayIndex {
		fmt.Fprintf(&b, "  REPLAYLINK_INDEX=%s\n", o.Index)
	}
	if o.DataStream {
		b.WriteString("  REPLAYLINK_DATA_STREAM=true\n")
	}
	b.WriteString("\nThen run replaylink check with the same settings.\n")
	io.WriteString(w, b.String())
}

// isLoopback says whether raw's host is this machine only (127.0.0.0/8,
// ::1, localhost), which no other host can reach.
func isLoopback(raw string) bool {
	u, err := neturl.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}
