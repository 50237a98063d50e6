package setup

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// configured fills what config always gives setup (--index, --retention,
// at their defaults) where a test leaves it zero.
func configured(o Options) Options {
	if o.Index == "" {
		o.Index = "logs"
	}
	if o.Retention == 0 {
		o.Retention = 720 * time.Hour
	}
	return o
}

func mustPrepare(t *testing.T, o *Options) {
	t.Helper()
	if err := o.prepare(); err != nil {
		t.Fatal(err)
	}
}

// TestZeroOptionsAreRefused: setup takes no default of its own for what a
// user sets (config owns them); a zero index or retention is refused with
// the flag's name, before any request.
func TestZeroOptionsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no index", Options{Retention: time.Hour}, "--index"},
		{"zero retention", Options{Index: "logs"}, "--retention"},
		{"negative retention", Options{Index: "logs", Retention: -time.Hour}, "--retention"},
	} {
		for _, run := range []func(context.Context, *bytes.Buffer, Options) int{
			func(ctx context.Context, w *bytes.Buffer, o Options) int { return Run(ctx, w, o) },
			func(ctx context.Context, w *bytes.Buffer, o Options) int { return Check(ctx, w, o) },
		} {
			var out bytes.Buffer
			tc.o.Client.URLs = []string{"http://127.0.0.1:1"} // never asked
			if code := run(context.Background(), &out, tc.o); code != ExitMisconfigured || !strings.Contains(out.String(), tc.want) {
				t.Errorf("%s: exit %d, output %q; want %d naming %s", tc.name, code, out.String(), ExitMisconfigured, tc.want)
			}
		}
	}
}
