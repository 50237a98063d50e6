package enrich

import "testing"

// TestLeadingMarker: the guide's marker counts where its logging filter
// puts it, at the start of the message after the common log prefixes, and
// nowhere else. The forging attempts are user input that a backend echoes
// into a message.
func TestLeadingMarker(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint64
	}{
		// Where the guide's filter puts it.
		{"[openReplaySession.id=123] Endpoint accessed", 123},
		{"  [openReplaySession.id=123] indented", 123},
		{"INFO:root:[openReplaySession.id=123] Endpoint accessed", 123},             // Python's default format
		{"ERROR:app.cart:[openReplaySession.id=7] Exception on /api/cart [GET]", 7}, // logger.exception
		{"ERROR:__main__: [openReplaySession.id=7] x", 7},
		{"[2024-05-01 10:00:00,123] ERROR in app: [openReplaySession.id=7] x", 7},                             // Flask's default
		{"2024-05-01 10:00:00,123 - app - ERROR - [openReplaySession.id=7] x", 7},                             // Python's dashed format
		{"2024-05-01 10:00:00,123 ERROR [openReplaySession.id=7] x", 7},                                       // "%(asctime)s %(levelname)s %(message)s"
		{"ERROR:    [openReplaySession.id=7] x", 7},                                                           // uvicorn
		{"[2024-05-01 10:00:00 +0000] [12] [ERROR] [openReplaySession.id=7] x", 7},                            // gunicorn
		{"10:00:00.123 [http-nio-8080-exec-1] ERROR c.e.shop.Cart - [openReplaySession.id=7] x", 7},           // logback
		{"10:00:00.123 [main] INFO  c.e.Shop      - [openReplaySession.id=7] x", 7},                           // log4j2, padded
		{"2024-05-01T10:00:00.123Z ERROR 1 --- [           main] c.e.Shop   : [openReplaySession.id=7] x", 7}, // Spring Boot
		{"2024-05-01T10:00:00.123Z ERROR 1 --- [shop] [main] c.e.Shop : [openReplaySession.id=7] x", 7},       // Spring Boot 3.2
		{"E, [2024-05-01T10:00:00.123456 #1] ERROR -- : [openReplaySession.id=7] x", 7},                       // Ruby's Logger
		{"E, [2024-05-01T10:00:00.123456 #1] ERROR -- shop: [openReplaySession.id=7] x", 7},
		{"2024-05-01T10:00:00.000Z\tERROR\tcart/handler.go:42\t[openReplaySession.id=7] x", 7}, // zap's console encoder
		{"2024-05-01T10:00:00.000Z\terror\tshop\tcart/handler.go:42\t[openReplaySession.id=7] x", 7},
		{"E0501 10:00:00.123456    1 handler.go:42] [openReplaySession.id=7] x", 7}, // klog
		{"2024/05/01 10:00:00 [openReplaySession.id=7] x", 7},                       // Go's log package
		{"error: [openReplaySession.id=7] x", 7},                                    // winston
		{"[error] [openReplaySession.id=7] x", 7},
		{"INFO:root:[openReplaySession.id=5] user typed [openReplaySession.id=999]", 5}, // the first one opens the message

		// Echoed user input: not at the start of the message.
		{"INFO user searched for [openReplaySession.id=999] request_id=echo-1", 0},
		{"INFO:app:user searched for [openReplaySession.id=999]", 0},
		{"INFO:app:search: [openReplaySession.id=999]", 0},
		{"INFO search: [openReplaySession.id=999]", 0},
		{"[2024-05-01 10:00:00,123] ERROR in app: query [openReplaySession.id=999] failed", 0},
		{"10:00:00.123 [main] ERROR c.e.Shop - bad input [openReplaySession.id=999]", 0},
		{"E, [2024-05-01T10:00:00.123456 #1] ERROR -- : q=[openReplaySession.id=999]", 0},
		{"GET /s?q=[openReplaySession.id=5] HTTP/1.1", 0},                       // glued to a URL
		{`127.0.0.1 - - "GET /[openReplaySession.id=5] HTTP/1.1" 404 -`, 0},     // an access line's path
		{"user typed ERROR [openReplaySession.id=999]", 0},                      // a level word inside a message
		{"2024/05/01 10:00:00 handler: [openReplaySession.id=999]", 0},          // no level: only a time may come first
		{"INFO:app:Exception on /x [GET]\n[openReplaySession.id=999] later", 0}, // not on the first line

		// Not the guide's form.
		{"openReplaySession.id=5 without brackets", 0},
		{"[openReplaySession.id=5x] trailing junk", 0},
		{"[openReplaySession.id=0] zero", 0},
		{"[openReplaySession.id=] empty", 0},
		{"[openReplaySession.id=99999999999999999999999] too long", 0},
		{"[openReplaySession.id=12", 0},
	} {
		if got := leadingMarker([]byte(firstLine([]byte(tc.line)))); got != tc.want {
			t.Errorf("leadingMarker(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestMessageMarker(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint64
	}{
		{`{"level":"info","msg":"[openReplaySession.id=9] x"}`, 9},
		{`{"level":"info","msg":" [openReplaySession.id=9] x"}`, 9},
		{`level=info msg="[openReplaySession.id=9] x"`, 9},
		{`{"level":"info","msg":"search for [openReplaySession.id=9]"}`, 0},
		{`{"level":"info","msg":"x","note":"[openReplaySession.id=9] x"}`, 0}, // another field
		{`level=info msg=x q="[openReplaySession.id=9]"`, 0},
	} {
		var lp lineParser
		if got := lp.parse([]byte(tc.line)).msgMarker; got != tc.want {
			t.Errorf("parse(%s).msgMarker = %d, want %d", tc.line, got, tc.want)
		}
	}
}
