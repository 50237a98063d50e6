package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// report collects a test's numbers. They are logged when the test ends and,
// when REPLAYLINK_FAULTS_SUMMARY names a file, appended to it as one line
// "test<TAB>result<TAB>seconds<TAB>key=value ..." for testenv/soak.sh's table.
type report struct {
	t     *testing.T
	start time.Time
	mu    sync.Mutex
	kv    []string
}

func newReport(t *testing.T) *report {
	r := &report{t: t, start: time.Now()}
	t.Cleanup(func() {
		r.mu.Lock()
		numbers := strings.Join(r.kv, " ")
		r.mu.Unlock()
		result := "PASS"
		switch {
		case t.Failed():
			result = "FAIL"
		case t.Skipped():
			result = "SKIP"
		}
		t.Logf("numbers: %s", numbers)
		path := os.Getenv("REPLAYLINK_FAULTS_SUMMARY")
		if path == "" {
			return
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Logf("summary: %v", err)
			return
		}
		defer f.Close()
		fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", t.Name(), result, seconds(time.Since(r.start)), numbers)
	})
	return r
}

func (r *report) add(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kv = append(r.kv, fmt.Sprintf("%s=%v", key, v))
}

// Sizes: short forms by default (make test); REPLAYLINK_SOAK=1 switches to
// the long forms (make soak); each can also be set on its own.
var soak = os.Getenv("REPLAYLINK_SOAK") == "1"

// sizeInt is REPLAYLINK_FAULTS_<name> if set, else the short or long value.
func sizeInt(name string, short, long int) int {
	if v, err := strconv.Atoi(os.Getenv("REPLAYLINK_FAULTS_" + name)); err == nil && v > 0 {
		return v
	}
	if soak {
		return long
	}
	return short
}

// sizeDuration is sizeInt for durations (Go syntax: 20s, 2m).
func sizeDuration(name string, short, long time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv("REPLAYLINK_FAULTS_" + name)); err == nil && v > 0 {
		return v
	}
	if soak {
		return long
	}
	return short
}

// The sizes every test shares.
var (
	// rate is the steady load in requests per second.
	rate = sizeInt("RATE", 200, 2000)
	// faultTime is how long an injected Elasticsearch fault lasts.
	faultTime = sizeDuration("FAULT", 5*time.Second, 30*time.Second)
	// outageTime is how long the node is stopped in TestOutage*.
	outageTime = sizeDuration("OUTAGE", 20*time.Second, 60*time.Second)
	// conns is the number of concurrent client connections.
	conns = sizeInt("CONNS", 10000, 10000)
)

// catchUp is how long a test waits for the backlog after the faults: the
// shipper's backoff is capped at 30 s, so one full backoff plus shipping.
var catchUp = sizeDuration("CATCHUP", 90*time.Second, 5*time.Minute)
