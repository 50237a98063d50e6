// Package config is replaylink's one user-facing configuration: the Config
// struct, its defaults, where values come from (flags over environment over a
// YAML file over defaults), and Validate. Each field is described once, by its
// struct tags, so the flag, the environment variable, the YAML key and the
// --help text can never disagree:
//
//	flag:"es-url"      flag --es-url, env REPLAYLINK_ES_URL, YAML key es-url
//	default:"logs"     default value, in the same syntax as a flag value
//	help:"..."         one line for --help
//	group:"ship"       which commands take it as a flag (see Commands)
//	secret:"true"      never printed
package config

import (
	"bytes"
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "REPLAYLINK_"

// field is one configurable value, found by reflection over Config.
type field struct {
	flag, env, def, help, group string
	secret                      bool
	index                       []int
	typ                         reflect.Type
}

// fields lists Config's fields in declaration order.
func fields() []field {
	var out []field
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			if sf.Anonymous {
				walk(sf.Type, idx)
				continue
			}
			name := sf.Tag.Get("flag")
			if name == "" {
				continue
			}
			out = append(out, field{
				flag: name, env: EnvName(name), def: sf.Tag.Get("default"), help: sf.Tag.Get("help"),
				group: sf.Tag.Get("group"), secret: sf.Tag.Get("secret") == "true", index: idx, typ: sf.Type,
			})
		}
	}
	walk(reflect.TypeOf(Config{}), nil)
	return out
}

// EnvName is the environment variable read for a flag: es-url -> REPLAYLINK_ES_URL.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Command says which flag groups a subcommand takes: its --help lists
// those flags only, and its command line refuses the others. The config
// file and the environment may set any field, whatever the command, so one
// file serves all.
type Command struct {
	Name   string
	Groups []string
}

func (c Command) takes(group string) bool {
	return slices.Contains(c.Groups, group)
}

// Commands are replaylink's subcommands that take settings, each with the
// groups of the settings it uses (the group tags in config.go).
var Commands = map[string]Command{
	"serve":  {Name: "serve", Groups: []string{"log", "proxy", "session", "capture", "enrich", "es", "target", "ship", "admin", "admin-server"}},
	"run":    {Name: "run", Groups: []string{"log", "proxy", "session", "capture", "enrich", "es", "target", "ship", "admin", "admin-server"}},
	"setup":  {Name: "setup", Groups: []string{"es", "target", "setup"}},
	"check":  {Name: "check", Groups: []string{"es", "target"}},
	"lookup": {Name: "lookup", Groups: []string{"es", "admin", "lookup"}},
}

// Flag is one flag of a command, for --help and the tests that hold the
// README to the binary.
type Flag struct {
	Name, Default, Help string
	Group               string // its title in --help
	Repeatable          bool
}

// Flags lists the flags cmd takes, in declaration order; --config is
// everyone's and not listed.
func (c Command) Flags() []Flag {
	var out []Flag
	for _, f := range fields() {
		if c.takes(f.group) {
			out = append(out, Flag{Name: f.flag, Default: f.def, Help: f.help, Group: groupTitles[f.group], Repeatable: f.typ.Kind() == reflect.Slice})
		}
	}
	return out
}

// ErrHelp is returned by Load when --help was asked for; the usage was written.
var ErrHelp = flag.ErrHelp

// Load builds a Config for cmd from defaults, the YAML file named by --config
// (or REPLAYLINK_CONFIG), the environment (getenv) and args, in rising order of
// precedence, then validates it. It returns the arguments left after the flags.
func Load(cmd Command, args []string, getenv func(string) string, usage io.Writer) (*Config, []string, error) {
	cfg := &Config{origins: map[string]origin{}}
	v := reflect.ValueOf(cfg).Elem()
	all := fields()
	for _, f := range all {
		if err := set(v.FieldByIndex(f.index), f.def, false); err != nil {
			panic(fmt.Sprintf("config: bad default for %s: %v", f.flag, err)) // a programming error
		}
	}

	fs := flag.NewFlagSet("replaylink "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fromFlags := map[string][]string{}
	for _, f := range all {
		if !cmd.takes(f.group) {
			continue
		}
		name := f.flag
		if f.typ.Kind() == reflect.Bool {
			fs.Var(boolRecorder{name, fromFlags}, name, f.help)
		} else {
			fs.Var(recorder{name, fromFlags}, name, f.help)
		}
	}
	var configPath string
	fs.StringVar(&configPath, "config", "", "YAML file with settings (keys are flag names)")
	// Flags may follow positional arguments (replaylink lookup 123 --json),
	// except for run, where everything after the first argument or "--" is
	// the backend's command line.
	var left []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeUsage(usage, cmd, all)
				return nil, nil, ErrHelp
			}
			return nil, nil, fmt.Errorf("%v (see 'replaylink %s --help')", err, cmd.Name)
		}
		after := fs.Args()
		terminated := len(after) < len(rest) && rest[len(rest)-len(after)-1] == "--"
		if cmd.Name == "run" || terminated || len(after) == 0 {
			left = append(left, after...)
			break
		}
		left = append(left, after[0])
		rest = after[1:]
	}
	if configPath == "" {
		configPath = getenv(EnvPrefix + "CONFIG")
	}
	if configPath != "" {
		if err := loadFile(v, all, configPath, cfg.origins); err != nil {
			return nil, nil, err
		}
	}
	for _, f := range all {
		raw := getenv(f.env)
		if raw == "" {
			continue
		}
		if err := set(v.FieldByIndex(f.index), raw, false); err != nil {
			return nil, nil, fmt.Errorf("environment variable %s (--%s): %s", f.env, f.flag, explain(f, raw, err))
		}
		cfg.origins[f.flag] = origin{env: true}
	}
	for _, f := range all {
		vals, ok := fromFlags[f.flag]
		if !ok {
			continue
		}
		cfg.origins[f.flag] = origin{flag: true}
		fv := v.FieldByIndex(f.index)
		if fv.Kind() == reflect.Slice {
			fv.Set(reflect.MakeSlice(fv.Type(), 0, len(vals)))
		}
		for _, raw := range vals {
			items := []string{raw}
			if fv.Kind() == reflect.Slice {
				// A repeatable flag also takes a comma-separated list, as
				// its environment variable does and as --help shows its
				// default (--session-source token,header).
				items = strings.Split(raw, ",")
			}
			for _, item := range items {
				if err := set(fv, strings.TrimSpace(item), true); err != nil {
					return nil, nil, fmt.Errorf("%s: %s", origin{flag: true}.describe(f.flag), explain(f, item, err))
				}
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, left, nil
}

// describe names a setting where it was set, as the start of an error:
// "flag --mark", "environment variable REPLAYLINK_MARK (--mark)", "config
// file c.yaml: line 3: key mark (--mark)"; for a setting left at its
// default, the flag and its variable.
func (o origin) describe(flagName string) string {
	switch {
	case o.flag:
		return "flag --" + flagName
	case o.env:
		return fmt.Sprintf("environment variable %s (--%s)", EnvName(flagName), flagName)
	case o.file != "":
		return fmt.Sprintf("config file %s: line %d: key %s (--%s)", o.file, o.line, flagName, flagName)
	}
	return fmt.Sprintf("--%s (%s)", flagName, EnvName(flagName))
}

// recorder keeps each flag's raw values so precedence can be applied after
// the config file and the environment are read.
type recorder struct {
	name string
	m    map[string][]string
}

func (r recorder) String() string     { return "" }
func (r recorder) Set(s string) error { r.m[r.name] = append(r.m[r.name], s); return nil }

type boolRecorder recorder

func (r boolRecorder) String() string     { return "" }
func (r boolRecorder) Set(s string) error { r.m[r.name] = append(r.m[r.name], s); return nil }
func (r boolRecorder) IsBoolFlag() bool   { return true }

func loadFile(v reflect.Value, all []field, path string, origins map[string]origin) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w (give an existing YAML file with --config or REPLAYLINK_CONFIG)", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("config file %s: %v", path, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: expected a mapping of flag names to values, like 'es-url: http://localhost:9200'", path, root.Line)
	}
	byName := map[string]field{}
	for _, f := range all {
		byName[f.flag] = f
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		f, ok := byName[k.Value]
		if !ok {
			return fmt.Errorf("config file %s: line %d: unknown key %q; keys are flag names without dashes in front, e.g. %s", path, k.Line, k.Value, suggest(k.Value, all))
		}
		fv := v.FieldByIndex(f.index)
		at := origin{file: path, line: val.Line}
		switch val.Kind {
		case yaml.ScalarNode:
			if err := set(fv, val.Value, false); err != nil {
				return fmt.Errorf("%s: %s", at.describe(f.flag), explain(f, val.Value, err))
			}
		case yaml.SequenceNode:
			if fv.Kind() != reflect.Slice {
				return fmt.Errorf("%s takes one value, not a list: %s", at.describe(f.flag), expected(f))
			}
			fv.Set(reflect.MakeSlice(fv.Type(), 0, len(val.Content)))
			for _, item := range val.Content {
				at.line = item.Line
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s: list items must be plain values", at.describe(f.flag))
				}
				if err := set(fv, item.Value, true); err != nil {
					return fmt.Errorf("%s: %s", at.describe(f.flag), explain(f, item.Value, err))
				}
			}
			at.line = val.Line
		default:
			return fmt.Errorf("%s: %s", at.describe(f.flag), expected(f))
		}
		origins[f.flag] = at
	}
	return nil
}

func suggest(key string, all []field) string {
	norm := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(key))
	for _, f := range all {
		if f.flag == norm {
			return fmt.Sprintf("did you mean %q?", f.flag)
		}
	}
	return "es-url, upstream, listen (see 'replaylink serve --help')"
}

// explain names the value's problem without echoing secrets.
func explain(f field, raw string, err error) string {
	if isText(f.typ) {
		return err.Error() // a fixed-value setting's error quotes the value and lists the allowed ones
	}
	shown := strconv.Quote(raw)
	if f.secret {
		shown = "(secret value hidden)"
	}
	return fmt.Sprintf("invalid value %s: %v; %s", shown, err, expected(f))
}

func expected(f field) string {
	switch {
	case isText(f.typ):
		return "expected one of the values --help lists for it"
	case f.typ == reflect.TypeOf(time.Duration(0)):
		return "expected a duration like 200ms, 5s or 2m"
	case f.typ == reflect.TypeOf(ByteSize(0)):
		return "expected a size like 512KiB, 5MB or 1GiB"
	case f.typ.Kind() == reflect.Bool:
		return "expected true or false"
	case f.typ.Kind() == reflect.Int || f.typ.Kind() == reflect.Int64:
		return "expected a whole number"
	case f.typ.Kind() == reflect.Slice:
		return "expected one value per flag (repeat the flag, or separate values with commas), a YAML list, or a comma-separated list in the environment"
	}
	return "expected text"
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// isText says whether t parses itself (a fixed-value setting's type).
func isText(t reflect.Type) bool { return reflect.PointerTo(t).Implements(textUnmarshaler) }

// set parses raw into v. For slices, appendOne adds one item; otherwise raw
// is a comma-separated list that replaces the slice (the environment form).
func set(v reflect.Value, raw string, appendOne bool) error {
	if v.Kind() == reflect.Slice {
		if !appendOne {
			v.Set(reflect.MakeSlice(v.Type(), 0, 2))
			if raw == "" {
				return nil
			}
			for _, part := range strings.Split(raw, ",") {
				if err := set(v, strings.TrimSpace(part), true); err != nil {
					return err
				}
			}
			return nil
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := set(elem, raw, false); err != nil {
			return err
		}
		v.Set(reflect.Append(v, elem))
		return nil
	}
	switch {
	case isText(v.Type()):
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(raw))
	case v.Type() == reflect.TypeOf(time.Duration(0)):
		if raw == "" {
			v.SetInt(0)
			return nil
		}
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration")
		}
		v.SetInt(int64(d))
	case v.Type() == reflect.TypeOf(ByteSize(0)):
		n, err := ParseByteSize(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		if raw == "" {
			v.SetBool(false)
			return nil
		}
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		if raw == "" {
			v.SetInt(0)
			return nil
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return errors.New("not a whole number")
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

func writeUsage(w io.Writer, cmd Command, all []field) {
	fmt.Fprintf(w, "Usage: replaylink %s [flags]%s\n\n", cmd.Name, usageTail(cmd.Name))
	fmt.Fprintf(w, "%s\n\nEvery flag can also be set by its environment variable, or as a key in the YAML file\ngiven with --config (REPLAYLINK_CONFIG). Flags win over the environment, the environment over the file.\n\n", summaries[cmd.Name])
	// Groups that share a title (es and target, admin and admin-server)
	// show as one.
	groups := map[string][]field{}
	var titles []string
	for _, f := range all {
		if !cmd.takes(f.group) {
			continue
		}
		title := groupTitles[f.group]
		if _, ok := groups[title]; !ok {
			titles = append(titles, title)
		}
		groups[title] = append(groups[title], f)
	}
	sort.SliceStable(titles, func(i, j int) bool {
		return groupOrder(groups[titles[i]][0].group) < groupOrder(groups[titles[j]][0].group)
	})
	for _, title := range titles {
		fmt.Fprintf(w, "%s:\n", title)
		for _, f := range groups[title] {
			def := ""
			if f.def != "" && !f.secret {
				def = " (default " + f.def + ")"
			}
			rep := ""
			if f.typ.Kind() == reflect.Slice {
				rep = ", repeatable"
			}
			fmt.Fprintf(w, "  --%s%s%s\n      %s [$%s]\n", f.flag, def, rep, f.help, f.env)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  --config PATH\n      YAML file with settings [$%sCONFIG]\n", EnvPrefix)
}

func usageTail(name string) string {
	switch name {
	case "run":
		return " -- CMD [ARGS...]"
	case "lookup":
		return " SESSION_ID"
	}
	return ""
}

var summaries = map[string]string{
	"serve":  "Proxy HTTP requests to the upstream(s), record one access event per request with its OpenReplay session, and ship documents to Elasticsearch (or --output without --es-url).",
	"run":    "Like serve, and also start CMD as a child process, capture its stdout and stderr line by line (passed through unchanged), and attribute each line to the session of the request that caused it. Exits with the child's exit code.",
	"setup":  "Install the index template, retention and write target in Elasticsearch, write a starter document, and with --api-keys create least-privilege API keys; prints what to paste into OpenReplay.",
	"check":  "Walk the whole path to Elasticsearch and OpenReplay's query, one line per step; exit code 0 only when all pass.",
	"lookup": "Print the backend logs of one OpenReplay session.",
}

var groupTitles = map[string]string{
	"log":          "replaylink's own log",
	"proxy":        "Proxy",
	"session":      "Session of a request",
	"capture":      "Capturing backend output",
	"enrich":       "Documents",
	"es":           "Elasticsearch",
	"target":       "Elasticsearch",
	"ship":         "Spool and shipping",
	"admin":        "Admin listener (health, metrics, lookup, ingest)",
	"admin-server": "Admin listener (health, metrics, lookup, ingest)",
	"setup":        "Set-up",
	"lookup":       "Lookup",
}

var groupList = []string{"log", "proxy", "session", "capture", "enrich", "es", "target", "ship", "admin", "admin-server", "setup", "lookup"}

func groupOrder(g string) int {
	if i := slices.Index(groupList, g); i >= 0 {
		return i
	}
	return len(groupList)
}
