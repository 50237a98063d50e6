// Package estest gives integration tests the URL of the real search node that
// `make test` starts (testenv/es). Outside CI a missing node skips the test;
// under CI (CI=true) it fails it, so a broken node can never pass as green.
package estest

import (
	"fmt"
	"net/http"
	"os"
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
