// Package enrich turns what the proxy and capture hand over into documents
// OpenReplay can show next to a session replay: one access document per
// proxied request, one backend document per log record the backend printed
// (multi-line records such as tracebacks grouped into one), each attributed
// to its OpenReplay session when the evidence allows, marked for OpenReplay's
// search by a policy that keeps a session's errors within its 1000 hits, and
// published under a deterministic _id.
//
// Enricher ties it together; Attributor decides sessions. The document
// format, the marking policy and the attribution levels are described in
// docs/document-format.md.
package enrich
