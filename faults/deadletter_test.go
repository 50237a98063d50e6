package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

// TestPartialBulkFailuresGoToDeadLetterFile: the index exists before
// replaylink starts, with user_agent.original mapped as a number and
// ignore_malformed off (a team's own mapping that clashes with replaylink's
// documents). Requests whose User-Agent is a number are indexed; the others
// are refused item by item with a mapping error inside the same bulk
// requests. Every refused document must be in the dead-letter file with its
// error, every other one in the index, each exactly once.
func TestPartialBulkFailuresGoToDeadLetterFile(t *testing.T) {
	t.Parallel()
	esURL := estest.URL(t)
	r := newReport(t)
	b := startBackend(t, 0)
	x := newIndex(t, esURL)
	x.must(http.MethodPut, "/"+x.Name, map[string]any{
		"settings": map[string]any{"number_of_replicas": 0, "index.mapping.ignore_malformed": false},
		"mappings": map[string]any{"properties": map[string]any{
			"user_agent": map[string]any{"properties": map[string]any{"original": map[string]any{"type": "long"}}},
		}},
	})
	spool := t.TempDir()
	rl := startReplaylink(t, procOptions{command: "serve", args: serveArgs(b, esURL, x, spool)})
	l := newLoad(t, "r", rl.Listen)
	l.decorate = func(i int, req *http.Request) {
		if i%4 == 3 {
			req.Header.Set("User-Agent", "clashing-agent/"+strconv.Itoa(i))
			l.expectAbsent(i)
		} else {
			req.Header.Set("User-Agent", strconv.Itoa(100000+i))
		}
	}
	l.run(context.Background(), rate, sizeDuration("DURATION", 6*time.Second, 60*time.Second))
	l.requireAllServed(r)

	checkConservation(t, x, l, r, catchUp)

	refused := 0
	l.mu.Lock()
	for id := range l.absent {
		if i, _ := l.index(id); l.results[i].answered {
			refused++
		}
	}
	l.mu.Unlock()
	deadLetters := filepath.Join(spool, "dead-letter.ndjson")
	took, ok := waitFor(catchUp, func() bool { return countLines(deadLetters) >= refused })
	r.add("refused", refused)
	r.add("dead_letter_wait_s", seconds(took))
	if !ok {
		t.Errorf("dead-letter file holds %d lines after %v, want %d", countLines(deadLetters), took, refused)
	}

	// Each refused request once in the dead-letter file, with the error.
	seen := map[string]int{}
	f, err := os.Open(deadLetters)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 32<<20)
	for sc.Scan() {
		var dl struct {
			Index  string `json:"index"`
			ID     string `json:"_id"`
			Status int    `json:"status"`
			Error  struct {
				Type string `json:"type"`
			} `json:"error"`
			Document string `json:"document"`
		}
		if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
			t.Fatalf("dead-letter line is not JSON: %v: %s", err, sc.Bytes())
		}
		var doc accessDoc
		if err := json.Unmarshal([]byte(dl.Document), &doc.Doc); err != nil {
			t.Fatalf("dead letter's document is not the JSON document: %v: %s", err, dl.Document)
		}
		id := doc.Doc.HTTP.Request.ID
		seen[id]++
		if !l.isAbsent(id) {
			t.Errorf("dead letter for request %s, which was not meant to be refused: %s", id, sc.Bytes())
		}
		if dl.Status != http.StatusBadRequest || !strings.Contains(dl.Error.Type, "mapper_parsing_exception") || dl.Index != x.Name || dl.ID == "" {
			t.Errorf("dead letter without the index, _id, status 400 and mapping error: %s", sc.Bytes())
		}
	}
	dups := 0
	for id, n := range seen {
		if n > 1 {
			dups++
			t.Errorf("request %s is %d times in the dead-letter file", id, n)
		}
	}
	r.add("dead_letters", len(seen))
	if len(seen) != refused {
		t.Errorf("%d refused requests, %d in the dead-letter file", refused, len(seen))
	}
	if m := rl.metrics()["replaylink_ship_documents_dead_lettered_total"]; int(m) != refused {
		t.Errorf("replaylink_ship_documents_dead_lettered_total = %v, want %d", m, refused)
	}
	rl.checkMemory(r)
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}
