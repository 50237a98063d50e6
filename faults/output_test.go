package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutputRotationKeepsEveryDocument: with a small --output-max-bytes,
// the embedded default's output file is rotated many times while requests
// come in, and every access document is in exactly one of the files:
// rotation renames, it never drops or repeats.
func TestOutputRotationKeepsEveryDocument(t *testing.T) {
	t.Parallel()
	r := newReport(t)
	b := startBackend(t, 0)
	dir := t.TempDir()
	out := filepath.Join(dir, "docs.ndjson")
	in := startReplaylink(t, procOptions{command: "serve", args: []string{"--upstream", b.URL,
		"--spool-dir", filepath.Join(dir, "spool"), "--output", out, "--flush-interval", "100ms",
		"--output-max-bytes", "8KiB", "--output-keep", "1000"}})

	const n = 300
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/r/%d", in.Listen, i), nil)
		req.Header.Set("X-Request-ID", fmt.Sprintf("rot-%d", i))
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	seen := map[string]int{}
	var files int
	count := func() int {
		clear(seen)
		files = 0
		paths, _ := filepath.Glob(out + "*")
		for _, p := range paths {
			files++
			for _, line := range readLines(t, p) {
				var d struct {
					HTTP struct {
						Request struct {
							ID string `json:"id"`
						} `json:"request"`
					} `json:"http"`
				}
				if json.Unmarshal(line, &d) == nil && strings.HasPrefix(d.HTTP.Request.ID, "rot-") {
					seen[d.HTTP.Request.ID]++
				}
			}
		}
		return len(seen)
	}
	if _, ok := waitFor(20*time.Second, func() bool { return count() == n }); !ok {
		t.Fatalf("%d of %d access documents in the output files", count(), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s is in the output %d times", id, c)
		}
	}
	m := in.metrics()
	r.add("files", files)
	r.add("rotations", m["replaylink_output_rotations_total"])
	if files < 3 || m["replaylink_output_rotations_total"] != float64(files-1) {
		t.Errorf("%d files and %v rotations counted: the output was not rotated at 8 KiB (%d documents)", files, m["replaylink_output_rotations_total"], n)
	}
	if m["replaylink_output_removed_files_total"] != 0 || m["replaylink_output_rotate_errors_total"] != 0 {
		t.Errorf("files deleted (%v) or rotations failed (%v) with --output-keep 1000", m["replaylink_output_removed_files_total"], m["replaylink_output_rotate_errors_total"])
	}
	if _, err := os.Stat(out + ".1"); err != nil {
		t.Errorf("no %s.1: %v", filepath.Base(out), err)
	}
}
