package estest

import (
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvClusterURLs names the variable that carries the HTTP URLs of the
// three-node test cluster (testenv/es/cluster.sh up prints them),
// comma-separated; EnvClusterControl the path of cluster.sh, which kills,
// stops and starts its nodes. `make test` sets both for its cluster phase.
const (
	EnvClusterURLs    = "REPLAYLINK_TEST_CLUSTER_URLS"
	EnvClusterControl = "REPLAYLINK_TEST_CLUSTER_CTL"
)

// Cluster is the three-node test cluster: its node URLs (node N is
// URLs[N-1]) and the script that controls them.
type Cluster struct {
	URLs   []string
	script string
}

// ClusterControl returns the test cluster, or skips the test when none was
// given: tests that kill nodes run only in make test's cluster phase (and
// make soak), on a cluster of their own, as outage tests do (Control).
func ClusterControl(t testing.TB) *Cluster {
	t.Helper()
	urls, script := os.Getenv(EnvClusterURLs), os.Getenv(EnvClusterControl)
	if urls == "" || script == "" {
		t.Skipf("cluster tests run in make test's cluster phase (%s and %s unset; testenv/es/cluster.sh up prints the URLs)", EnvClusterURLs, EnvClusterControl)
	}
	c := &Cluster{URLs: strings.Split(urls, ","), script: script}
	if len(c.URLs) != 3 {
		t.Fatalf("%s=%q: want the three nodes' URLs", EnvClusterURLs, urls)
	}
	c.WaitGreen(t)
	return c
}

// Kill sends SIGKILL to node n (1, 2 or 3).
func (c *Cluster) Kill(t testing.TB, n int) { t.Helper(); c.run(t, "kill", n) }

// Stop stops node n cleanly (SIGTERM), keeping its data.
func (c *Cluster) Stop(t testing.TB, n int) { t.Helper(); c.run(t, "stop", n) }

// Start starts node n on its data and waits until it has rejoined.
func (c *Cluster) Start(t testing.TB, n int) { t.Helper(); c.run(t, "start", n) }

// WaitGreen waits until all three nodes are in and every shard is assigned.
func (c *Cluster) WaitGreen(t testing.TB) { t.Helper(); c.run(t, "wait-green", 0) }

// Master returns the number of the elected cluster manager.
func (c *Cluster) Master(t testing.TB) int {
	t.Helper()
	out := c.run(t, "master", 0)
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s master: %q", c.script, out)
	}
	return n
}

// Live returns the URL of a node that answers, other than those in except.
func (c *Cluster) Live(t testing.TB, except ...int) string {
	t.Helper()
	client := http.Client{Timeout: 2 * time.Second}
	for i, u := range c.URLs {
		if contains(except, i+1) {
			continue
		}
		if resp, err := client.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return u
			}
		}
	}
	t.Fatalf("no node of the test cluster answers (except %v)", except)
	return ""
}

func contains(ns []int, n int) bool {
	for _, m := range ns {
		if m == n {
			return true
		}
	}
	return false
}

func (c *Cluster) run(t testing.TB, verb string, n int) string {
	t.Helper()
	args := []string{verb}
	if n > 0 {
		args = append(args, strconv.Itoa(n))
	}
	out, err := exec.Command(c.script, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", c.script, strings.Join(args, " "), err, out, msg)
	}
	return string(out)
}
