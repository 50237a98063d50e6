package capture

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/rs/zerolog"
)

// DefaultMaxIngestBodyBytes bounds a POST /ingest body when no limit is given.
const DefaultMaxIngestBodyBytes = 8 << 20

// Reasons an ingest request is refused (label values of
// replaylink_capture_ingest_rejected_total).
const (
	reasonMethod          = "method"
	reasonContentType     = "content_type"
	reasonContentEncoding = "content_encoding"
	reasonTooLarge        = "too_large"
	reasonBadBody         = "bad_body"
)

// IngestHandler accepts log lines pushed over HTTP (POST /ingest on the admin
// listener), one per line of the body: NDJSON or plain text, sent as
// application/x-ndjson (see ingestContentTypes), optionally gzip-compressed. Lines are not parsed here; empty lines are skipped. Each
// line is handed to Sink as it is read, with Stream Ingest and Origin the
// request's remote address.
//
// Answers are JSON. 202 {"accepted":N,"truncated":M}: N lines were handed on
// (M of them cut at MaxLineBytes). A refused body may have been partly read:
// 413 and 400 answers carry "accepted" too, the lines before the problem,
// which were kept; resending the whole batch would repeat them. A body
// announced (Content-Length) larger than MaxBodyBytes is refused unread.
type IngestHandler struct {
	Sink         Sink  // required
	MaxLineBytes int   // DefaultMaxLineBytes when 0
	MaxBodyBytes int64 // limit on the body, and on it decompressed; DefaultMaxIngestBodyBytes when 0
	// HookNonce: the lines may come from files a runtime hook marked (an
	// agent pushing a sidecar's log file); zero: none (see package hooks).
	HookNonce hooks.Nonce
	Logger    zerolog.Logger
}

var _ http.Handler = (*IngestHandler)(nil)

// ingestContentTypes are the media types accepted. Each makes a browser ask
// first (a CORS preflight, which the admin listener never grants), so a web
// page cannot push lines with them. text/plain, form types and a missing
// Content-Type are what a page can send without asking (fetch with mode
// no-cors), so they are refused with the fix, even though the body would be
// read the same way: lines are lines, plain text included.
var ingestContentTypes = map[string]bool{
	"application/x-ndjson":    true,
	"application/ndjson":      true,
	"application/jsonl":       true,
	"application/x-jsonlines": true,
	"application/jsonlines":   true,
	"application/json":        true,
}

// ingestContentTypeFix is the end of every Content-Type refusal.
const ingestContentTypeFix = "send the lines (JSON or plain text, one per line) with Content-Type: application/x-ndjson " +
	"(or application/json, application/jsonl); text/plain, form types and no Content-Type are refused because any web page " +
	"can send them to this host. With curl: curl -H 'Content-Type: application/x-ndjson' --data-binary @app.log http://%s/ingest"

type ingestAnswer struct {
	Accepted  int    `json:"accepted"`
	Truncated int    `json:"truncated"` // always there, 0 too: the README shows it
	Error     string `json:"error,omitempty"`
}

var gzipReaders sync.Pool // of *gzip.Reader

func (h *IngestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, http.StatusMethodNotAllowed, reasonMethod, ingestAnswer{
			Error: fmt.Sprintf("method %s not allowed: send log lines with POST", r.Method)})
		return
	}
	if ct := r.Header.Get("Content-Type"); !ingestContentType(ct) {
		what := fmt.Sprintf("Content-Type %q is not accepted", clipHeader(ct))
		if ct == "" {
			what = "no Content-Type"
		}
		h.refuse(w, http.StatusUnsupportedMediaType, reasonContentType, ingestAnswer{
			Error: what + ": " + fmt.Sprintf(ingestContentTypeFix, clipHeader(r.Host))})
		return
	}
	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxIngestBodyBytes
	}
	if r.ContentLength > limit {
		h.refuse(w, http.StatusRequestEntityTooLarge, reasonTooLarge, ingestAnswer{
			Error: fmt.Sprintf("body of %d bytes is over the %d-byte limit: send smaller batches", r.ContentLength, limit)})
		return
	}

	body := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := newGzipReader(body)
		if err != nil {
			h.refuseBody(w, err, limit, ingestAnswer{})
			return
		}
		defer gzipReaders.Put(zr)
		body = &limitedReader{r: zr, left: limit}
	default:
		h.refuse(w, http.StatusUnsupportedMediaType, reasonContentEncoding, ingestAnswer{
			Error: fmt.Sprintf("Content-Encoding %q not supported: send the body uncompressed or gzip-compressed", enc)})
		return
	}

	var ans ingestAnswer
	lr := NewLineReader(body, h.MaxLineBytes)
	defer lr.Release()
	l := Line{Stream: Ingest, Origin: r.RemoteAddr}
	hand := func() {
		if len(l.Text) == 0 && !l.Truncated {
			return
		}
		deliver(h.Sink, &l, h.HookNonce)
		ans.Accepted++
		if l.Truncated {
			ans.Truncated++
		}
	}
	for {
		err := lr.Next(&l)
		if err == nil {
			hand()
			continue
		}
		if err != io.EOF {
			h.refuseBody(w, err, limit, ans)
			return
		}
		break
	}
	if lr.Final(&l) {
		hand()
	}
	writeAnswer(w, http.StatusAccepted, ans)
}

func ingestContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && ingestContentTypes[mt]
}

// clipHeader bounds a request header quoted in an answer.
func clipHeader(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// errBodyTooLarge is the decompressed body passing the limit.
var errBodyTooLarge = errors.New("decompressed body over the limit")

// refuseBody answers a body that could not be read to its end.
func (h *IngestHandler) refuseBody(w http.ResponseWriter, err error, limit int64, ans ingestAnswer) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, errBodyTooLarge):
		ans.Error = fmt.Sprintf("body over the %d-byte limit (after decompression too): send smaller batches; the first %d lines were accepted", limit, ans.Accepted)
		h.refuse(w, http.StatusRequestEntityTooLarge, reasonTooLarge, ans)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF):
		ans.Error = fmt.Sprintf("body is not valid gzip (%v) though Content-Encoding says gzip; the first %d lines were accepted", err, ans.Accepted)
		h.refuse(w, http.StatusBadRequest, reasonBadBody, ans)
	default:
		ans.Error = fmt.Sprintf("reading the body failed (%v); the first %d lines were accepted", err, ans.Accepted)
		h.refuse(w, http.StatusBadRequest, reasonBadBody, ans)
	}
}

func (h *IngestHandler) refuse(w http.ResponseWriter, status int, reason string, ans ingestAnswer) {
	ingestRejected[reason].Inc()
	h.Logger.Debug().Int("status", status).Str("reason", reason).Int("accepted", ans.Accepted).Msg("ingest request refused")
	writeAnswer(w, status, ans)
}

func writeAnswer(w http.ResponseWriter, status int, ans ingestAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ans)
}

func newGzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(r); err != nil {
			gzipReaders.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

// limitedReader fails with errBodyTooLarge past its limit (io.LimitReader
// would end silently, hiding that lines were cut off).
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.left <= 0 {
		// One byte more proves the body goes on.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(b)) > l.left {
		b = b[:l.left]
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	return n, err
}
