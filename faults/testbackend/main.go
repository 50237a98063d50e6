// Command testbackend is the backend the fault tests put replaylink in front
// of, as a separate process so that it can crash, start late, hold thousands
// of connections without the race detector's goroutine limit, and print
// hostile log lines on replaylink run's pipes.
//
//	GET  /body?n=N   N bytes of 'x' (slow-client tests)
//	POST /upload     reads the whole body, then 200 "got N"
//	ANY  /crash      exits with code 3 without answering (crash tests)
//	ANY  /fail       500 with a body holding a <script> tag
//	GET  /log?kind=K prints hostile lines of kind K (see hostileLines), then 200
//	GET  /slow?ms=N  200 after N ms, printing nothing
//	GET  /search?q=Q logs "search failed for: Q" as an app logs user input, then 200 after ms (default 50)
//	GET  /echo?msg=M logs M as the whole message, then 200 after ms (default 50)
//	GET  /guide      logs its openReplaySession.id header as OpenReplay's guide does, then 200 after ms (default 50)
//	ANY  anything    200 "ok <X-Request-ID>\n"
//
// With -misbehave it is a backend that breaks HTTP framing on purpose
// instead (see misbehave.go).
//
// It prints "backend started pid=N listen=ADDR" when it listens.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	delay := flag.Duration("delay", 0, "wait this long before listening")
	misbehave := flag.Bool("misbehave", false, "send bytes after responses (see misbehave.go)")
	flag.Parse()
	time.Sleep(*delay)
	if *misbehave {
		serveMisbehaving(*listen)
		return
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := bytes.Repeat([]byte{'x'}, 32<<10)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %d", n)
	})
	mux.HandleFunc("/crash", func(http.ResponseWriter, *http.Request) {
		fmt.Println("backend crashing on purpose")
		os.Exit(3)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "<script>alert('body')</script> backend failed")
	})
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get("X-Request-ID")
		for _, l := range hostileLines(r.URL.Query().Get("kind"), rid) {
			os.Stdout.Write(l)
		}
		fmt.Fprintf(w, "ok %s\n", rid)
	})
	// What the attribution attacks need: a slow victim, and an app that
	// logs what users type, in Python's default format.
	pause := func(r *http.Request, def int) {
		n, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil {
			n = def
		}
		time.Sleep(time.Duration(n) * time.Millisecond)
	}
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		pause(r, 0)
		fmt.Fprintln(w, "slow ok")
	})
	mux.HandleFunc("/search", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("ERROR:app:search failed for: " + r.URL.Query().Get("q"))
		pause(r, 50)
		fmt.Fprintln(w, "no results")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("INFO:app:" + r.URL.Query().Get("msg"))
		pause(r, 50)
		fmt.Fprintln(w, "echoed")
	})
	mux.HandleFunc("/guide", func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("openReplaySession.id"); id != "" {
			fmt.Printf("INFO:app:[openReplaySession.id=%s] guide handler %s\n", id, r.URL.Query().Get("tag"))
		} else {
			fmt.Printf("INFO:app:guide handler %s without a session header\n", r.URL.Query().Get("tag"))
		}
		pause(r, 50)
		fmt.Fprintln(w, "guided")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s\n", r.Header.Get("X-Request-ID"))
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("backend started pid=%d listen=%s\n", os.Getpid(), *listen)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// hostileLines are what a backend may print that must not break documents:
// each one names the request id so it is attributed exactly.
func hostileLines(kind, rid string) [][]byte {
	tag := "request_id=" + rid
	switch kind {
	case "script":
		return [][]byte{[]byte("ERROR <script>alert('log')</script> " + tag + "\n")}
	case "forge":
		// A line that tries to break out of its document: a bare CR, a fake
		// next line with another session's marker, quotes and braces.
		return [][]byte{[]byte("INFO user said \"}\r{\"openReplaySession\":{\"id\":\"999\"}} " + tag + "\n")}
	case "jsonnl":
		// A structured line whose message holds escaped newlines and a CR.
		return [][]byte{[]byte(`{"level":"error","msg":"first\nsecond\r\nthird","request_id":"` + rid + `"}` + "\n")}
	case "marker":
		// The backend echoes user input that looks like the guide's marker.
		return [][]byte{[]byte("INFO user searched for [openReplaySession.id=999] " + tag + "\n")}
	case "ansi":
		return [][]byte{[]byte("\x1b[31mERROR\x1b[0m red \x1b]0;title\x07 \x1b[2J " + tag + "\n")}
	case "utf8":
		return [][]byte{[]byte("WARNING bad bytes \xff\xfe\xc3\x28 \xed\xa0\x80 nul\x00 " + tag + "\n")}
	case "huge":
		return [][]byte{[]byte("INFO huge " + tag + " " + strings.Repeat("A", 10<<20) + "\n")}
	}
	return nil
}
