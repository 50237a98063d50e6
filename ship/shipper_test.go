package ship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replaylink/replaylink/internal/estest"
)

func TestShipsExactlyN(t *testing.T) {
	n := realNode(t)
	p, _, index := shipTo(t, n, n.url)
	const N = 3000
	publishN(t, p, 0, N)
	closeWithin(t, p, 30*time.Second)

	if got := n.count(index); got != N {
		t.Fatalf("index holds %d documents, want %d", got, N)
	}
	st := p.Stats()
	if st.Queued != N || st.Shipped != N || st.Duplicates != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The template applied: OpenReplay's own query finds a session's
	// documents, and the session id is a keyword.
	_, b := n.do("GET", "/"+index+"/_search", `{"size":1000,"query":{"match_phrase":{"message":"openReplaySession.id=1003"}}}`)
	var res struct {
		Hits struct {
			Total struct{ Value int }
		}
	}
	json.Unmarshal(b, &res)
	if want := N / 7; res.Hits.Total.Value < want || res.Hits.Total.Value > want+1 {
		t.Fatalf("OpenReplay's query found %d documents of session 1003, want about %d", res.Hits.Total.Value, want)
	}
	_, b = n.do("GET", "/"+index+"/_mapping/field/openReplaySession.id", "")
	if !bytes.Contains(b, []byte(`"type":"keyword"`)) {
		t.Fatalf("openReplaySession.id mapping: %s", b)
	}
}

func TestOutageThenRecoveryShipsExactlyN(t *testing.T) {
	n := realNode(t)
	proxy := estest.NewProxy(t, n.url)
	p, _, index := shipTo(t, n, proxy.URL())
	const N = 2000
	publishN(t, p, 0, N/2)
	waitFor(t, "first documents shipped", func() bool { return p.Stats().Shipped > 0 })

	proxy.Down()
	publishN(t, p, N/2, N/2) // the proxy keeps publishing during the outage
	waitFor(t, "retries during the outage", func() bool { return p.Stats().Retried > 0 })
	time.Sleep(300 * time.Millisecond)
	shippedDuringOutage := p.Stats().Shipped
	proxy.Up()

	closeWithin(t, p, 30*time.Second)
	if got := n.count(index); got != N {
		t.Fatalf("index holds %d documents, want %d", got, N)
	}
	if shippedDuringOutage == N {
		t.Fatal("everything was shipped before the outage: the test proved nothing")
	}
	t.Logf("stats %+v", p.Stats())
}

// TestSIGKILLReplaysWithoutDuplicates kills a real process (this test
// binary, re-run as TestCrashChild) with SIGKILL while it ships, then
// starts again on its spool: every document must be indexed exactly once.
// The child never saves its acknowledged position, so everything it
// shipped is replayed and must come back as 409 duplicates.
func TestSIGKILLReplaysWithoutDuplicates(t *testing.T) {
	n := realNode(t)
	index := testIndex(t, n)
	dir := t.TempDir()
	const N = 2000

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RL_CRASH_DIR="+dir, "RL_CRASH_INDEX="+index, "RL_CRASH_N="+strconv.Itoa(N))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	shippedAtKill := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "READY shipped="); ok {
			shippedAtKill, _ = strconv.Atoi(v)
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred code, no Close, no flush
	cmd.Wait()
	if shippedAtKill < 0 {
		t.Fatal("the child never got ready")
	}
	if got := n.count(index); got != shippedAtKill {
		t.Logf("index held %d documents at the kill (child counted %d)", got, shippedAtKill)
	}

	opts := fastOptions(t, n.url)
	opts.SpoolDir, opts.Index = dir, index
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	closeWithin(t, p, 30*time.Second)
	if got := n.count(index); got != N {
		t.Fatalf("index holds %d documents after the restart, want exactly %d", got, N)
	}
	if st := p.Stats(); st.Duplicates < uint64(shippedAtKill) {
		t.Fatalf("%d duplicates on replay, want at least the %d shipped before the kill", st.Duplicates, shippedAtKill)
	}
}

// TestCrashChild is the process TestSIGKILLReplaysWithoutDuplicates kills.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("RL_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process of TestSIGKILLReplaysWithoutDuplicates")
	}
	n := realNode(t)
	total, _ := strconv.Atoi(os.Getenv("RL_CRASH_N"))
	opts := fastOptions(t, n.url)
	opts.SpoolDir, opts.Index, opts.InstallTemplate = dir, os.Getenv("RL_CRASH_INDEX"), true
	opts.SyncInterval = time.Hour // the acknowledged position is never saved
	opts.FlushBytes = 8 << 10
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, p, 0, total)
	waitFor(t, "half shipped", func() bool { return p.Stats().Shipped >= uint64(total/2) })
	fmt.Printf("READY shipped=%d\n", p.Stats().Shipped)
	time.Sleep(time.Minute) // killed here
}

func TestMappingConflictGoesToDeadLetterFile(t *testing.T) {
	n := realNode(t)
	p, opts, index := shipTo(t, n, n.url)
	const N = 500
	bad := 0
	for i := range N {
		id, src := testDoc(i)
		if i%50 == 7 { // http is an object: a string there cannot be indexed, ignore_malformed or not
			src = fmt.Appendf(nil, `{"@timestamp":"2024-05-01T12:00:00.000Z","level":"error","message":"m","http":"oops-%d"}`, i)
			bad++
		}
		if err := p.Publish(id, src); err != nil {
			t.Fatal(err)
		}
	}
	closeWithin(t, p, 30*time.Second)

	if got := n.count(index); got != N-bad {
		t.Fatalf("index holds %d documents, want the %d good ones", got, N-bad)
	}
	if st := p.Stats(); st.DeadLettered != uint64(bad) {
		t.Fatalf("dead-lettered %d, want %d", st.DeadLettered, bad)
	}
	f, err := os.ReadFile(filepath.Join(opts.SpoolDir, DeadLetterFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(f)), "\n")
	if len(lines) != bad {
		t.Fatalf("dead-letter file has %d lines, want %d", len(lines), bad)
	}
	for _, l := range lines {
		var dl struct {
			ID       string `json:"_id"`
			Index    string `json:"index"`
			Status   int    `json:"status"`
			Error    struct{ Type, Reason string }
			Document string `json:"document"`
		}
		if err := json.Unmarshal([]byte(l), &dl); err != nil {
			t.Fatalf("dead letter is not JSON: %v: %s", err, l)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(dl.ID, "doc-"))
		if err != nil || i%50 != 7 || dl.Index != index || dl.Status != 400 ||
			!strings.Contains(dl.Error.Type, "parsing") || !strings.Contains(dl.Document, fmt.Sprintf(`"http":"oops-%d"`, i)) {
			t.Fatalf("dead letter %+v", dl)
		}
	}
}

func TestCorruptSpoolTailStillStarts(t *testing.T) {
	n := realNode(t)
	index := testIndex(t, n)
	dir := t.TempDir()

	// A first run that cannot reach Elasticsearch leaves everything spooled.
	opts := fastOptions(t, estest.DeadURL(t))
	opts.SpoolDir = dir
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	const N = 300
	publishN(t, p, 0, N)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	if err := p.Close(ctx); err == nil || !strings.Contains(err.Error(), "stay in the spool") {
		t.Fatalf("Close with Elasticsearch unreachable: %v", err)
	}
	cancel()

	// A torn record at the end, as a crash in the middle of a write leaves.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0xff, 0x01, 0, 0, 1, 2, 3, 4, 5})
	f.Close()

	opts = fastOptions(t, n.url)
	opts.SpoolDir, opts.Index = dir, index
	p, err = New(opts)
	if err != nil {
		t.Fatalf("start on a spool with a torn tail: %v", err)
	}
	if st := p.Stats().Spool; st.CorruptTails != 1 || st.CorruptBytes != 9 {
		t.Fatalf("torn tail not counted: %+v", st)
	}
	closeWithin(t, p, 30*time.Second)
	if got := n.count(index); got != N {
		t.Fatalf("index holds %d documents, want %d", got, N)
	}
}

func TestEmbeddedDefaultWritesLinesAndKeepsThem(t *testing.T) {
	var out lockedBuffer
	opts := fastOptions(t)
	opts.Output = &out
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	const N = 700
	publishN(t, p, 0, N)
	// A source with a line break still makes one line.
	if err := p.Publish([]byte("multi"), []byte("{\"message\":\"a\",\n \"level\":\"info\"}")); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, p, 10*time.Second)

	lines := out.lines()
	if len(lines) != N+1 {
		t.Fatalf("%d lines, want %d", len(lines), N+1)
	}
	for i, l := range lines[:N] {
		// Each line names its _id first, as the bulk action would.
		if id, doc := testDoc(i); l != `{"_id":"`+string(id)+`",`+string(doc[1:]) {
			t.Fatalf("line %d: %s, want the document %s with its _id %s in front", i, l, doc, id)
		}
	}
	if !json.Valid([]byte(lines[N])) {
		t.Fatalf("last line is not one JSON document: %q", lines[N])
	}
	docs := p.MemoryStore().Session("1003")
	if len(docs) != N/7 {
		t.Fatalf("Session(1003): %d documents, want %d", len(docs), N/7)
	}
	if docs[0].ID != "doc-000003" || !bytes.Contains(docs[0].Source, []byte(`"req-3"`)) {
		t.Fatalf("first document of session 1003: %s %s", docs[0].ID, docs[0].Source)
	}
	if got := p.MemoryStore().Request("req-10"); len(got) != 1 || got[0].ID != "doc-000010" {
		t.Fatalf("Request(req-10): %v", got)
	}
	if err := p.Publish([]byte("late"), []byte("{}")); err != ErrClosed {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// TestCloseLeavesTheRestInTheSpool: with Elasticsearch away, Close gives up
// at its deadline, and the next start (here in the embedded mode, writing
// to an output) delivers every document.
func TestCloseLeavesTheRestInTheSpool(t *testing.T) {
	opts := fastOptions(t, estest.DeadURL(t))
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, p, 0, 100)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close said everything was shipped to a dead node")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v past its 300ms deadline", d)
	}

	var out lockedBuffer
	again := fastOptions(t)
	again.SpoolDir, again.Output = opts.SpoolDir, &out
	p, err = New(again)
	if err != nil {
		t.Fatal(err)
	}
	closeWithin(t, p, 10*time.Second)
	if got := len(out.lines()); got != 100 {
		t.Fatalf("%d documents delivered after the restart, want 100", got)
	}
}

func TestPublishRefusesBadDocuments(t *testing.T) {
	opts := fastOptions(t)
	opts.Output = &lockedBuffer{}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWithin(t, p, 5*time.Second)
	for _, tc := range []struct {
		id, src []byte
	}{
		{nil, []byte("{}")},
		{bytes.Repeat([]byte("x"), 513), []byte("{}")},
		{[]byte("a"), nil},
		{[]byte("a"), make([]byte, maxDocumentBytes+1)},
	} {
		if err := p.Publish(tc.id, tc.src); err == nil {
			t.Errorf("Publish(%d-byte id, %d-byte source) accepted", len(tc.id), len(tc.src))
		}
	}
	if st := p.Stats(); st.Dropped != 4 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	with := func(set func(*Options)) Options {
		o := fastOptions(t)
		o.Output = &lockedBuffer{}
		set(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no url, no output", with(func(o *Options) { o.Output = nil }), "--output"},
		{"no spool dir", with(func(o *Options) { o.SpoolDir = "" }), "--spool-dir"},
		{"bad index", with(func(o *Options) { o.Index = "Logs" }), "--index"},
		{"no index", with(func(o *Options) { o.Index = "" }), "--index"},
		{"bad url", with(func(o *Options) { o.Output, o.Client.URLs = nil, []string{"localhost:9200"} }), "--es-url"},
		{"negative workers", with(func(o *Options) { o.Workers = -1 }), "--workers -1: must be greater than zero"},
		{"no workers", with(func(o *Options) { o.Workers = 0 }), "--workers 0"},
		{"no flush bytes", with(func(o *Options) { o.FlushBytes = 0 }), "--flush-bytes 0"},
		{"no flush interval", with(func(o *Options) { o.FlushInterval = 0 }), "--flush-interval 0s"},
		{"no spool", with(func(o *Options) { o.SpoolMaxBytes = 0 }), "--spool-max-bytes 0"},
		{"no sync interval", with(func(o *Options) { o.SyncInterval = 0 }), "--spool-sync-interval 0s"},
		{"negative memory store", with(func(o *Options) { o.MemoryStore = -1 }), "--memory-store -1: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
