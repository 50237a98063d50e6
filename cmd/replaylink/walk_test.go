package main

import (
	"encoding"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
)

// components is everything config's settings reach, through wire.go's
// mapping functions, for serve and for run.
type components struct {
	Proxy, ProxyRun    any
	Enrich, EnrichRun  any
	Tailer             any
	Ship               any
	OutputFile         any
	Output, OutputRun  string
	Setup              any
	Lookup             any
	LookupHandler      any
	AdminServer        any
	Policy             any
	HooksDir, HooksRun string
	Child, Ingest      any
	Logger             zerolog.Logger
}

func componentsOf(c *config.Config) components {
	log := zerolog.Nop()
	policy, _ := adminPolicy(c)
	as := adminServer(c, nil)
	return components{
		Proxy:  proxyOptions(c, nil, log),
		Enrich: enrichOptions(c, false, false, nil, log), EnrichRun: enrichOptions(c, true, false, nil, log),
		Tailer:     tailerOptions(c, nil, hooks.Nonce{}, log),
		Ship:       shipOptions(c, nil, log),
		OutputFile: outputFileOptions(c, "docs.ndjson", log),
		Output:     outputPath(c, false), OutputRun: outputPath(c, true),
		Setup:         setupOptions(c),
		Lookup:        lookupOptions(c, "1"),
		LookupHandler: lookupHandlerOptions(c, nil, log),
		AdminServer:   [3]time.Duration{as.ReadHeaderTimeout, as.ReadTimeout, as.IdleTimeout},
		Policy:        *policy,
		HooksDir:      hooksDir(c, false), HooksRun: hooksDir(c, true),
		Child:  *childProcess(c, nil, hooks.Nonce{}, log),
		Ingest: *ingestHandler(c, nil, hooks.Nonce{}, log),
		Logger: newLogger(io.Discard, c.LogLevel, c.LogFormat),
	}
}

// usedBySelf are the settings serve reads itself, not through a part's
// options, each with where.
var usedBySelf = map[string]string{
	"grace-period": "serve's signal handling and stop's deadline (serve.go)",
}

// withSetting are the settings that matter only beside another's value,
// which both sides of their comparison get.
var withSetting = map[string]map[string]string{
	"allow-remote-lookup": {"REPLAYLINK_ADMIN": "0.0.0.0:9090"}, // on a loopback address there is nothing to allow
}

// TestEverySettingReachesItsComponent walks every field of config.Config
// by reflection: for each, a value other than its default (and 0 wherever
// config accepts 0) must change what some component gets from wire.go. A
// new field that reaches nothing fails here.
func TestEverySettingReachesItsComponent(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret-from-a-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(env map[string]string) *config.Config {
		t.Helper()
		c, _, err := config.Load(config.Commands["serve"], nil, func(k string) string { return env[k] }, nil)
		if err != nil {
			t.Fatalf("%v: %v", env, err)
		}
		return c
	}
	base := componentsOf(load(nil))
	if !reflect.DeepEqual(base, componentsOf(load(nil))) {
		t.Fatal("the components of one config differ between two calls: the comparison below would prove nothing")
	}
	// Text for values of each kind, tried in turn: the first config
	// accepts and that is not the default is the setting's other value.
	words := []string{secret, "127.0.0.1:18081", "http://127.0.0.1:5001", "shop", "json", "debug", "all", "errors", "none",
		"problems", "gzip", "on-failure", "off", "token", "2"}
	walkFields(reflect.TypeOf(config.Config{}), func(sf reflect.StructField) {
		name := sf.Tag.Get("flag")
		if name == "" {
			return
		}
		t.Run(name, func(t *testing.T) {
			if where, ok := usedBySelf[name]; ok {
				t.Skipf("read by %s", where)
			}
			env := config.EnvName(name)
			def := sf.Tag.Get("default")
			base := base
			if with := withSetting[name]; with != nil {
				base = componentsOf(load(with))
			}
			var tried []string
			for _, v := range candidates(sf.Type, def, words) {
				c, _, err := config.Load(config.Commands["serve"], nil, func(k string) string {
					if k == env {
						return v
					}
					return withSetting[name][k]
				}, nil)
				if err != nil {
					continue
				}
				tried = append(tried, v)
				if reflect.DeepEqual(componentsOf(c), base) {
					t.Errorf("--%s %q (default %q) changes nothing any component gets: map it in wire.go", name, v, def)
				}
			}
			if len(tried) == 0 {
				t.Errorf("--%s: no value other than its default was accepted; add one to the test's candidates", name)
			}
		})
	})
	for name := range usedBySelf {
		found := false
		walkFields(reflect.TypeOf(config.Config{}), func(sf reflect.StructField) { found = found || sf.Tag.Get("flag") == name })
		if !found {
			t.Errorf("usedBySelf names --%s, which is no setting", name)
		}
	}
}

func walkFields(t reflect.Type, visit func(reflect.StructField)) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			walkFields(sf.Type, visit)
			continue
		}
		visit(sf)
	}
}

// candidates are the texts of values other than def for a field of type
// typ: 0 and one more than the default for numbers, the other truth value,
// and the words for text and lists.
func candidates(typ reflect.Type, def string, words []string) []string {
	var out []string
	add := func(v string) {
		if v != def {
			out = append(out, v)
		}
	}
	switch {
	case reflect.PointerTo(typ).Implements(reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()), typ.Kind() == reflect.String, typ.Kind() == reflect.Slice:
		for _, w := range words {
			add(w)
		}
	case typ == reflect.TypeOf(time.Duration(0)):
		d, _ := time.ParseDuration(def)
		add("0s")
		add((d + time.Millisecond).String())
	case typ == reflect.TypeOf(config.ByteSize(0)):
		n, _ := config.ParseByteSize(def)
		add("0")
		add(strconv.FormatInt(int64(n)+1024, 10))
	case typ.Kind() == reflect.Bool:
		b, _ := strconv.ParseBool(def)
		add(strconv.FormatBool(!b))
	case typ.Kind() == reflect.Int:
		n, _ := strconv.Atoi(def)
		add("0")
		add(strconv.Itoa(n + 1))
	default:
		panic(fmt.Sprintf("no candidates for %s", typ))
	}
	return out
}
