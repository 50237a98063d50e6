// Package esclient is the one Elasticsearch client replaylink uses: the
// shipper (ship), `replaylink setup` and `replaylink check` (ship/setup) and
// lookup (given one by cmd/replaylink) all get it from New with the same
// Options (the --es-* flags), so set-up and check see what shipping will
// see.
//
// It owns how replaylink reaches a search cluster: the URLs and
// credentials (secrets never appear in errors or logs), TLS trust (a CA
// file or a CA fingerprint), OpenSearch 2.x passing the v8 client's
// product check (productTransport), the node pool that spreads requests
// over the cluster's HTTP nodes and fails over (nodePool; with
// --es-discover, learnt from _nodes/http), and ResponseError, Elasticsearch
// refusing a request.
//
// It lives apart from ship because it is not shipping: lookup and set-up
// use it without the spool or the bulk writer, and none of them should
// import ship to get it. It imports nothing of replaylink's pipeline. The
// node metrics keep their names (replaylink_ship_node_*): dashboards and the
// fault tests read them.
package esclient
