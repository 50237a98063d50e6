package ship

import (
	"net/url"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestShipperDiscoversTheNodes: with Discover, a shipper given a dead URL
// and the real node learns the node's own address from _nodes/http, drops
// the dead URL, and ships everything.
func TestShipperDiscoversTheNodes(t *testing.T) {
	n := realNode(t)
	index := testIndex(t, n)
	opts := fastOptions(t, estest.DeadURL(t), n.url)
	opts.Index, opts.InstallTemplate = index, true
	opts.Client.Discover, opts.Client.DiscoverInterval = true, time.Hour
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(n.url)
	waitFor(t, "discovery", func() bool { h := p.es.Nodes(); return len(h) == 1 && h[0] == u.Host })
	publishN(t, p, 0, 50)
	closeWithin(t, p, 30*time.Second)
	if got := n.count(index); got != 50 {
		t.Errorf("index holds %d documents, want 50", got)
	}
}
