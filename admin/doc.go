// Package admin is the access policy of the admin listener (--admin): who
// may use lookup (/sessions/, /requests/) and POST /ingest there (Policy:
// a bearer token, or a loopback listener, or explicitly open), and the guard
// against state-changing requests from web pages of another origin on every
// route (SameOriginWrites). Health and metrics are never behind the policy.
//
// It is its own package because it guards more than lookup: /ingest is
// capture's, and cmd/replaylink mounts both behind the same Policy. lookup
// and capture do not import it; the wiring does. What it shares with lookup
// (clipping quoted text) is below both, in internal/excerpt.
package admin
