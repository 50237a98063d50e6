// Package estest gives integration tests the URL of the real search node that
// `make test` starts (testenv/es). Outside CI a missing node skips the test;
// under CI (CI=true) it fails it, so a broken node can never pass as green.
package estest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// EnvURL names the variable that carries the node's URL.
const EnvURL = "REPLAYLINK_TEST_ES_URL"

// URL returns the test node's base URL, or skips (fails under CI) when none is running.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("integration test needs the search node: %s (run 'make es-up' and export %s)", why, EnvURL)
		}
		t.Skipf("no search node: %s (run 'make es-up' and export %s)", why, EnvURL)
	}
	if u == "" {
		missing(EnvURL + " is not set")
		return ""
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		missing(err.Error())
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		missing(fmt.Sprintf("GET %s answered %d", u, resp.StatusCode))
	}
	return u
}

// EnvControl names the variable that carries the path of testenv/es/node.sh
// when a test may stop and start the node. `make test` sets it only for the
// outage phase, which runs after every other test so no other package sees the
// node go away.
const EnvControl = "REPLAYLINK_TEST_ES_CTL"

// Node controls the test node's process for outage tests.
type Node struct{ script string }

// Control returns the node's controller. Tests that stop the node must be
// named TestOutage*: `make test` runs them alone, with EnvControl set.
func Control(t testing.TB) *Node {
	t.Helper()
	URL(t)
	s := os.Getenv(EnvControl)
	if s == "" {
		t.Skipf("outage tests run in make test's outage phase (%s unset)", EnvControl)
	}
	return &Node{script: s}
}

// Stop stops the node, keeping its data.
func (n *Node) Stop(t testing.TB) { t.Helper(); n.run(t, "stop") }

// Start starts the node again on its data and port and waits until it answers.
func (n *Node) Start(t testing.TB) { t.Helper(); n.run(t, "start") }

func (n *Node) run(t testing.TB, verb string) {
	out, err := exec.Command(n.script, verb).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", n.script, verb, err, out)
	}
}

// DeadURL returns the URL of a local port nothing listens on: a node that
// is down.
func DeadURL(t testing.TB) string {
	t.Helper()
	return "http://" + FreeAddr(t)
}

// FreeAddr returns a 127.0.0.1 address nothing listens on right now: for a
// node that is down, or a process that starts after it is told its address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
