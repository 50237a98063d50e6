package enrich

import (
	"testing"
	"time"
)

func TestTextLevel(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level level
		word  string
	}{
		{"ERROR:root:boom", levelError, "ERROR"},
		{"WARNING:werkzeug:careful", levelWarning, "WARNING"},
		{"[2024-05-01 10:00:01,123] ERROR in app: Exception on /x [GET]", levelError, "ERROR"},
		{"2024-05-01 10:00:00,001 - app - INFO - hi", levelInfo, "INFO"},
		{"[2024-05-01 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:8)", levelError, "CRITICAL"},
		{"E, [2024-05-01T10:00:00.130501 #1234] ERROR -- : boom", levelError, "ERROR"},
		{"W, [2024-05-01T10:00:00.130501 #1234]  WARN -- : hmm", levelWarning, "WARN"},
		{"E0501 10:00:08.123456       1 controller.go:114] sync failed", levelError, "E"},
		{"I0501 10:00:08.123456       1 controller.go:114] synced", levelInfo, "I"},
		{"<4>disk almost full", levelWarning, "4"},
		{"error: Unhandled rejection", levelError, "error"},
		{"warn: slow", levelWarning, "warn"},
		{"2024-05-01T10:00:04.000Z\tERROR\tapi/cart.go:91\tcannot save", levelError, "ERROR"},
		{"10:00AM ERR upstream closed error=EOF", levelError, "ERR"},
		{"10:00AM WRN slow", levelWarning, "WRN"},
		{"10:00AM DBG detail", levelDebug, "DBG"},
		{"ERRO[0007] cannot connect to redis", levelError, "ERRO"},
		{"WARN[0001] retry", levelWarning, "WARN"},
		{"10:00:02.001 [main] WARN  c.e.RateLimiter - over limit", levelWarning, "WARN"},
		{"2024-05-01T10:00:01.456Z ERROR 1 --- [nio-8080-exec-3] o.a.c.c.C : threw", levelError, "ERROR"},
		{"SEVERE: Servlet.service() threw exception", levelError, "SEVERE"},
		{"2024/05/01 10:00:00 [error] 7#7: *1 connect() failed", levelError, "error"},
		{"npm ERR! code ELIFECYCLE", levelError, "ERR"},
		{"Internal Server Error: /api/orders/17", levelError, ""},
		{"Not Found: /favicon.ico", levelWarning, ""},
		{"KeyError: 'cart_id'", levelError, ""},
		{"TypeError: Cannot read properties of null", levelError, ""},
		{"/app/app.py:12: DeprecationWarning: utcnow() is deprecated", levelWarning, ""},
		// Not levels.
		{"GET /api/cart HTTP/1.1 200", levelUnknown, ""},
		{"127.0.0.1 - - [01/May/2024 10:00:00] \"GET / HTTP/1.1\" 200 -", levelUnknown, ""},
		{"an error occurred while parsing", levelUnknown, ""},
		{"ERR_CONNECTION_REFUSED seen by the client", levelUnknown, ""},
		{"Error handling is fine here", levelUnknown, ""},
		{"", levelUnknown, ""},
	} {
		l, w := textLevel([]byte(tc.line))
		if l != tc.level || string(w) != tc.word {
			t.Errorf("textLevel(%q) = %v %q, want %v %q", tc.line, l, w, tc.level, tc.word)
		}
	}
}

func TestLevelNumber(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want level
	}{
		{10, levelDebug}, {20, levelDebug}, {30, levelInfo}, {40, levelWarning}, {50, levelError}, {60, levelError},
		{3, levelError}, {4, levelWarning}, {6, levelInfo}, {7, levelDebug},
		{10000, levelDebug}, {20000, levelInfo}, {30000, levelWarning}, {40000, levelError}, {-1, levelUnknown},
	} {
		if got := levelNumber(tc.n); got != tc.want {
			t.Errorf("levelNumber(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestParseStructured(t *testing.T) {
	type want struct {
		format                          lineFormat
		level                           level
		msg, logger, reqID, trace, span string
		errType, errMsg, stack, timeRaw string
		fieldSession                    uint64
	}
	for _, tc := range []struct {
		line string
		want want
	}{
		{`{"level":30,"time":1714557600123,"msg":"done","reqId":"req-1"}`,
			want{format: formatJSON, level: levelInfo, msg: "done", reqID: "req-1", timeRaw: "1714557600123"}},
		{`{"level":50,"err":{"type":"TypeError","message":"bad","stack":"TypeError: bad\n    at x (a.js:1:1)"},"msg":"failed"}`,
			want{format: formatJSON, level: levelError, msg: "failed", errType: "TypeError", errMsg: "bad", stack: "TypeError: bad\n    at x (a.js:1:1)"}},
		{`{"@timestamp":"2024-05-01T10:00:00Z","log.level":"warn","message":"m","log":{"logger":"ecs"},"trace.id":"abc","span":{"id":"def"}}`,
			want{format: formatJSON, level: levelWarning, msg: "m", logger: "ecs", trace: "abc", span: "def", timeRaw: "2024-05-01T10:00:00Z"}},
		{`{"levelname":"ERROR","name":"app","message":"x","exc_info":"Traceback (most recent call last):\n  File \"a.py\"\nKeyError: 'k'"}`,
			want{format: formatJSON, level: levelError, msg: "x", logger: "app", stack: "Traceback (most recent call last):\n  File \"a.py\"\nKeyError: 'k'"}},
		{`{"event":"order placed","level":"info","logger":"shop"}`,
			want{format: formatJSON, level: levelInfo, msg: "order placed", logger: "shop"}},
		{`{"msg":"both","message":"second","event":"third"}`,
			want{format: formatJSON, msg: "both"}},
		{`{"msg":"esc \"q\" \u00e9 \ud83d\ude00 \ud800 bad","openReplaySession.id":"77"}`,
			want{format: formatJSON, msg: "esc \"q\" é 😀 \ufffd bad", fieldSession: 77}},
		{`{"deep":{"a":{"b":{"c":{"msg":"too deep"}}}},"msg":"top"}`,
			want{format: formatJSON, msg: "top"}},
		{`{"stack":["frame1","frame2"],"level":"error","message":"zerolog"}`,
			want{format: formatJSON, level: levelError, msg: "zerolog", stack: `["frame1","frame2"]`}},
		{`time=2024-05-01T10:00:01Z level=ERROR msg="query \"x\" failed" err="pq: no" request_id=01HWX3K9Q7ZP4M2B8N6C5D1E0F`,
			want{format: formatLogfmt, level: levelError, msg: `query "x" failed`, errMsg: "pq: no", reqID: "01HWX3K9Q7ZP4M2B8N6C5D1E0F", timeRaw: "2024-05-01T10:00:01Z"}},
		{`ts=1714557600.5 caller=main.go:1 level=warn msg=plain trace_id=4bf92f3577b34da6a3ce929d0e0e4736`,
			want{format: formatLogfmt, level: levelWarning, msg: "plain", trace: "4bf92f3577b34da6a3ce929d0e0e4736", timeRaw: "1714557600.5"}},
		{`level=info msg="tab\there \x41 kept \u00e9"`,
			want{format: formatLogfmt, level: levelInfo, msg: "tab\there \\x41 kept é"}},
		// Not structured: kept as text.
		{`{"level":"info","msg":"unterminated"`, want{format: formatText, msg: `{"level":"info","msg":"unterminated"`}},
		{`{not json}`, want{format: formatText, msg: `{not json}`}},
		{`a=1 only one known? no`, want{format: formatText, msg: `a=1 only one known? no`}},
		{`x=1 y=2`, want{format: formatText, msg: `x=1 y=2`}},
	} {
		var lp lineParser
		p := lp.parse([]byte(tc.line))
		got := want{format: p.format, level: p.level, msg: string(p.message), logger: string(p.logger),
			reqID: string(p.requestID), trace: string(p.traceID), span: string(p.spanID), errType: string(p.errType),
			errMsg: string(p.errMessage), stack: string(p.stack), timeRaw: string(p.timeRaw), fieldSession: p.fieldSession}
		if got != tc.want {
			t.Errorf("parse(%s)\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
}

func TestStructuredTime(t *testing.T) {
	want := time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)
	for _, tc := range []struct {
		raw string
		num bool
		ok  bool
	}{
		{"1714557600123", true, true},
		{"1714557600.123", true, true},
		{"1714557600123000", true, true},
		{"1714557600123000000", true, true},
		{"2024-05-01T10:00:00.123Z", false, true},
		{"2024-05-01T12:00:00.123+02:00", false, true},
		{"2024-05-01 10:00:00.123Z", false, true},
		{"2024-05-01 10:00:00,123", false, false}, // no zone: unknown
		{"yesterday", false, false},
	} {
		got, ok := structuredTime([]byte(tc.raw), tc.num)
		if ok != tc.ok || ok && got.Sub(want).Abs() > time.Millisecond {
			t.Errorf("structuredTime(%s) = %v %v, want %v %v", tc.raw, got, ok, want, tc.ok)
		}
	}
}

func TestGoSignal(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"SIGQUIT: quit", true},
		{"SIGSEGV: segmentation violation", true},
		{"SIGFPE: floating-point exception", true},
		{"SIGTERM: stopping workers", false}, // the runtime does not dump for it: a message
		{"SIGQUIT: Quit now!", false},
		{"SIGQUIT: ", false},
		{"SIGNAL: received", false},
	} {
		if _, _, ok := goSignal([]byte(tc.line)); ok != tc.ok {
			t.Errorf("goSignal(%q) = %v, want %v", tc.line, ok, tc.ok)
		}
	}
}

func TestExceptionOf(t *testing.T) {
	for _, tc := range []struct{ stack, typ, msg string }{
		{"Traceback (most recent call last):\n  File \"a.py\", line 1\n    x()\nKeyError: 'k'\n", "KeyError", "'k'"},
		{"Traceback (most recent call last):\n  File \"a.py\"\nTimeoutError: t\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b.py\"\napp.Err: final", "app.Err", "final"},
		{"Traceback (most recent call last):\n  File \"a.py\"\nKeyboardInterrupt", "KeyboardInterrupt", ""},
		{"java.lang.IllegalStateException: boom\n\tat x.Y.z(Y.java:1)", "java.lang.IllegalStateException", "boom"},
		{"Error: boom\n    at main (/app/index.js:3:9)", "Error", "boom"},
		{"panic: nil map\n\ngoroutine 1 [running]:", "panic", "nil map"},
		{"SIGQUIT: quit\nPC=0x48be41 m=0 sigcode=0\n\ngoroutine 1 gp=0xc000002380 m=nil [IO wait]:", "SIGQUIT", "quit"},
		{"main.main\n\t/app/main.go:12", "", ""}, // zap's stack names no exception
	} {
		typ, msg := exceptionOf([]byte(tc.stack))
		if string(typ) != tc.typ || string(msg) != tc.msg {
			t.Errorf("exceptionOf(%q) = %q %q, want %q %q", tc.stack, typ, msg, tc.typ, tc.msg)
		}
	}
}
