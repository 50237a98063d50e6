package examples_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replaylink/replaylink/capture/hooks"
	"github.com/replaylink/replaylink/config"
)

// The parts of Kubernetes objects these tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       yaml.Node         `yaml:"spec"`
}

type deploymentSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []container `yaml:"initContainers"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []volume    `yaml:"volumes"`
}

type container struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	Ports         []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional bool   `yaml:"optional"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a name or a number
	} `yaml:"httpGet"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

func readObjects(t *testing.T, file string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, file)))
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o.Kind != "" {
			out = append(out, o)
		}
	}
}

func findObject(t *testing.T, objs []k8sObject, kind string) k8sObject {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind {
			return o
		}
	}
	t.Fatalf("no %s", kind)
	return k8sObject{}
}

func decodeSpec(t *testing.T, o k8sObject, into any) {
	t.Helper()
	if err := o.Spec.Decode(into); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

func (c container) port(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func TestKubernetesManifests(t *testing.T) {
	dir := "kubernetes"
	secrets := map[string]map[string]bool{} // Secret name -> keys
	for _, o := range readObjects(t, filepath.Join(dir, "secret.yaml")) {
		if o.Kind != "Secret" {
			continue
		}
		keys := map[string]bool{}
		for k := range o.StringData {
			keys[k] = true
		}
		for k := range o.Data {
			keys[k] = true
		}
		secrets[o.Metadata.Name] = keys
	}
	if len(secrets) == 0 {
		t.Fatal("secret.yaml defines no Secret")
	}

	sidecars := map[string]container{}
	for _, variant := range []struct {
		file   string
		native bool
	}{{"deployment.yaml", true}, {"deployment-pre-1.29.yaml", false}} {
		t.Run(variant.file, func(t *testing.T) {
			objs := readObjects(t, filepath.Join(dir, variant.file))
			var dep deploymentSpec
			decodeSpec(t, findObject(t, objs, "Deployment"), &dep)
			var svc serviceSpec
			decodeSpec(t, findObject(t, objs, "Service"), &svc)
			pod := dep.Template.Spec

			rl, app := findContainers(t, pod, variant.native)
			env := resolveEnv(t, pod, rl, secrets)
			rl.RestartPolicy = "" // the one intended difference
			sidecars[variant.file] = rl
			if len(rl.Args) == 0 || (rl.Args[0] != "serve" && rl.Args[0] != "run") {
				t.Fatalf("replaylink args %v: want serve (or run) first", rl.Args)
			}
			cfg := loadConfig(t, variant.file, rl.Args[1:], env)

			// Ports: the flags' ports are the container's named ports.
			_, listenPort := hostPort(t, "REPLAYLINK_LISTEN", cfg.Listen)
			adminHost, adminPort := hostPort(t, "REPLAYLINK_ADMIN", cfg.AdminListen)
			if strconv.Itoa(rl.port("http")) != listenPort {
				t.Errorf("replaylink's port named http is %d, but it listens on %s", rl.port("http"), cfg.Listen)
			}
			if strconv.Itoa(rl.port("admin")) != adminPort {
				t.Errorf("replaylink's port named admin is %d, but its admin listener is %s", rl.port("admin"), cfg.AdminListen)
			}
			if len(app.Ports) != 0 {
				t.Errorf("the app exposes ports %v; only replaylink should be reachable", app.Ports)
			}

			// Probes hit the admin listener's health paths.
			for _, p := range []struct {
				name string
				pr   *probe
				path string
			}{{"livenessProbe", rl.LivenessProbe, "/livez"}, {"readinessProbe", rl.ReadinessProbe, "/readyz"}} {
				if p.pr == nil || p.pr.HTTPGet == nil {
					t.Errorf("replaylink has no %s httpGet", p.name)
					continue
				}
				checkProbePort(t, p.name, rl, p.pr.HTTPGet.Port, adminPort)
				if p.pr.HTTPGet.Path != p.path {
					t.Errorf("%s path %q, want %s", p.name, p.pr.HTTPGet.Path, p.path)
				}
			}
			if sp := rl.StartupProbe; sp != nil && sp.HTTPGet != nil {
				checkProbePort(t, "startupProbe", rl, sp.HTTPGet.Port, adminPort)
				// A native sidecar's startup probe gates the app's start:
				// /readyz (which needs the app) would never pass.
				if variant.native && sp.HTTPGet.Path != "/livez" {
					t.Errorf("startupProbe path %q: a native sidecar must not wait for the app; use /livez", sp.HTTPGet.Path)
				}
			}

			// A non-loopback admin listener (for the kubelet's probes) keeps
			// lookup and ingest only behind a token from a Secret (issue 6).
			if !isLoopback(adminHost) {
				if cfg.AdminToken == "" || !fromSecret(rl, config.EnvName("admin-token")) {
					t.Errorf("admin listener on %s without REPLAYLINK_ADMIN_TOKEN from a Secret", cfg.AdminListen)
				}
				if cfg.AllowRemoteAdmin {
					t.Error("REPLAYLINK_ALLOW_REMOTE_LOOKUP=true would open lookup without a token")
				}
			}
			if cfg.ESAPIKey == "" {
				t.Error("no Elasticsearch API key (REPLAYLINK_ES_API_KEY or _FILE from a Secret)")
			}
			if env[config.EnvName("es-api-key")] != "" {
				if !fromSecret(rl, config.EnvName("es-api-key")) {
					t.Error("REPLAYLINK_ES_API_KEY is a literal value; take it from a Secret")
				}
			}

			// The upstream is the app on the pod's loopback, at the port it binds.
			if len(cfg.Upstreams) != 1 || !strings.HasSuffix(cfg.Upstreams[0], ":"+appBindPort(t, app)) ||
				!strings.HasPrefix(cfg.Upstreams[0], "http://127.0.0.1:") {
				t.Errorf("upstream %v, want http://127.0.0.1:%s (the app's --bind)", cfg.Upstreams, appBindPort(t, app))
			}

			// What the app writes to files, replaylink tails from the same volume.
			checkTail(t, pod, rl, app, cfg.Tail)

			// The spool lives on a volume larger than its cap.
			checkSpool(t, pod, rl, cfg)

			// The app loads the runtime hooks replaylink installs.
			checkHooks(t, pod, rl, app, cfg, variant.native)

			if time.Duration(pod.TerminationGracePeriodSeconds)*time.Second <= cfg.GracePeriod {
				t.Errorf("terminationGracePeriodSeconds %d is not above replaylink's --grace-period %s", pod.TerminationGracePeriodSeconds, cfg.GracePeriod)
			}
			for _, c := range []container{rl, app} {
				for _, r := range []string{"cpu", "memory"} {
					if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
						t.Errorf("container %s: no %s request and limit", c.Name, r)
					}
				}
			}

			// The Service sends traffic to replaylink, never around it.
			if !reflect.DeepEqual(svc.Selector, dep.Template.Metadata.Labels) || !reflect.DeepEqual(svc.Selector, dep.Selector.MatchLabels) {
				t.Errorf("Service selector %v does not match the pods %v", svc.Selector, dep.Template.Metadata.Labels)
			}
			for _, p := range svc.Ports {
				if p.TargetPort != "http" && p.TargetPort != listenPort {
					t.Errorf("Service port %d targets %q, not replaylink's proxy port (http, %s)", p.Port, p.TargetPort, listenPort)
				}
			}
			if len(svc.Ports) == 0 {
				t.Error("Service has no ports")
			}
		})
	}
	if a, b := sidecars["deployment.yaml"], sidecars["deployment-pre-1.29.yaml"]; !reflect.DeepEqual(a, b) {
		t.Errorf("the two variants configure replaylink differently:\n%+v\n%+v", a, b)
	}
}

// findContainers returns replaylink and the app, checking where each is.
func findContainers(t *testing.T, pod podSpec, native bool) (rl, app container) {
	t.Helper()
	var foundRL, foundApp bool
	for _, c := range pod.InitContainers {
		if c.Name == "replaylink" {
			rl, foundRL = c, true
			if !native {
				t.Error("replaylink is an init container in the pre-1.29 variant")
			}
			if c.RestartPolicy != "Always" {
				t.Errorf("replaylink init container has restartPolicy %q; a native sidecar needs Always", c.RestartPolicy)
			}
		}
	}
	for _, c := range pod.Containers {
		switch c.Name {
		case "replaylink":
			rl, foundRL = c, true
			if native {
				t.Error("replaylink is a plain container; the native variant has it in initContainers with restartPolicy: Always")
			}
		case "app":
			app, foundApp = c, true
		}
	}
	if !foundRL || !foundApp {
		t.Fatalf("want containers replaylink and app; have init %d, containers %d", len(pod.InitContainers), len(pod.Containers))
	}
	return rl, app
}

// resolveEnv turns a container's env into what replaylink would see: Secret
// references must name an existing Secret key, and *_FILE paths must be a
// key of a mounted Secret volume (replaced by a temporary file here).
func resolveEnv(t *testing.T, pod podSpec, c container, secrets map[string]map[string]bool) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if !secrets[ref.Name][ref.Key] {
				t.Errorf("%s: Secret %s has no key %q (secret.yaml)", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = "placeholder-" + ref.Key
		case strings.HasSuffix(e.Name, "_FILE"):
			key := mountedSecretKey(t, pod, c, e.Value, secrets)
			env[e.Name] = secretFile(t, key)
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

func mountedSecretKey(t *testing.T, pod podSpec, c container, file string, secrets map[string]map[string]bool) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if path.Dir(file) != path.Clean(m.MountPath) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			name := path.Base(file)
			key := name
			if len(v.Secret.Items) > 0 {
				key = ""
				for _, it := range v.Secret.Items {
					if it.Path == name {
						key = it.Key
					}
				}
			}
			if key == "" || !secrets[v.Secret.SecretName][key] {
				t.Errorf("%s: Secret %s mounted at %s has no file %s", file, v.Secret.SecretName, m.MountPath, name)
				return name
			}
			return key
		}
	}
	t.Errorf("%s is not a file of a Secret volume mounted in %s", file, c.Name)
	return path.Base(file)
}

func fromSecret(c container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
	}
	return false
}

func checkProbePort(t *testing.T, what string, c container, port, adminPort string) {
	t.Helper()
	if n := c.port(port); n != 0 {
		port = strconv.Itoa(n)
	}
	if port != adminPort {
		t.Errorf("%s on port %q, not the admin listener's %s", what, port, adminPort)
	}
}

// appBindPort reads gunicorn's --bind from the app container's command.
func appBindPort(t *testing.T, app container) string {
	t.Helper()
	args := append(append([]string{}, app.Command...), app.Args...)
	for i, a := range args {
		var addr string
		switch {
		case strings.HasPrefix(a, "--bind="):
			addr = strings.TrimPrefix(a, "--bind=")
		case (a == "--bind" || a == "-b") && i+1 < len(args):
			addr = args[i+1]
		default:
			continue
		}
		_, p := hostPort(t, "app --bind", addr)
		return p
	}
	t.Fatalf("app command %v has no --bind", args)
	return ""
}

// mountOf names the volume mounted at or above p in c, and where.
func mountOf(c container, p string) (vol, at string) {
	for _, m := range c.VolumeMounts {
		mp := path.Clean(m.MountPath)
		if p == mp || strings.HasPrefix(p, mp+"/") {
			return m.Name, mp
		}
	}
	return "", ""
}

func checkTail(t *testing.T, pod podSpec, rl, app container, tails []string) {
	t.Helper()
	if len(tails) == 0 {
		t.Error("REPLAYLINK_TAIL is not set: replaylink as a sidecar sees the app's output only through files")
		return
	}
	var logFile string
	for _, a := range append(append([]string{}, app.Command...), app.Args...) {
		if v, ok := strings.CutPrefix(a, "--error-logfile="); ok {
			logFile = v
		}
	}
	if logFile == "" {
		t.Fatal("the app does not write its output to a file (gunicorn --error-logfile with --capture-output)")
	}
	appVol, _ := mountOf(app, logFile)
	for _, glob := range tails {
		rlVol, _ := mountOf(rl, path.Dir(glob))
		if rlVol == "" || rlVol != appVol {
			t.Errorf("replaylink tails %s on volume %q, the app writes %s on volume %q", glob, rlVol, logFile, appVol)
		}
		if ok, _ := path.Match(glob, logFile); !ok {
			t.Errorf("--tail %s does not match the app's %s", glob, logFile)
		}
	}
}

// checkHooks: replaylink installs the runtime hooks on a volume the app
// mounts at the same path, and the app's environment loads them from
// there: the paths it names are the files hooks.Install writes, and the
// nonce file is the one replaylink reads. Without native sidecars, an
// init container installs them before the app starts.
func checkHooks(t *testing.T, pod podSpec, rl, app container, cfg *config.Config, native bool) {
	t.Helper()
	dir := path.Clean(cfg.HooksDir)
	if cfg.HooksDir == "" {
		t.Fatal("REPLAYLINK_HOOKS_DIR is not set: the app's lines are tied to requests by time only")
	}
	rlVol, _ := mountOf(rl, dir)
	appVol, appAt := mountOf(app, dir)
	if rlVol == "" || rlVol != appVol || appAt != dir {
		t.Errorf("replaylink installs the hooks in %s on volume %q; the app mounts %q at %q", dir, rlVol, appVol, appAt)
	}
	appEnv := map[string]string{}
	for _, e := range app.Env {
		appEnv[e.Name] = e.Value
	}
	installed := t.TempDir()
	if err := hooks.Install(installed); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.LoadOrCreateNonce(installed); err != nil {
		t.Fatal(err)
	}
	for _, kv := range hooks.FileEnv(dir) {
		name, want, _ := strings.Cut(kv, "=")
		if got := appEnv[name]; got != want {
			t.Errorf("the app's %s is %q, want %q", name, got, want)
		}
		// What it names exists once the hooks are installed there.
		p := strings.TrimPrefix(want, "--require=")
		if _, err := os.Stat(filepath.Join(installed, strings.TrimPrefix(p, dir))); err != nil {
			t.Errorf("the app's %s names %s, which installing the hooks does not make: %v", name, p, err)
		}
	}
	if native {
		return
	}
	for _, c := range pod.InitContainers {
		if len(c.Args) == 3 && c.Args[0] == "hooks" && c.Args[1] == "install" && path.Clean(c.Args[2]) == dir {
			if v, _ := mountOf(c, dir); v != rlVol {
				t.Errorf("init container %s installs into %s on volume %q, not %q", c.Name, dir, v, rlVol)
			}
			return
		}
	}
	t.Error("no init container runs 'replaylink hooks install' before the app (the pre-1.29 variant has no sidecar ordering)")
}

func checkSpool(t *testing.T, pod podSpec, rl container, cfg *config.Config) {
	t.Helper()
	vol, _ := mountOf(rl, path.Clean(cfg.SpoolDir))
	for _, v := range pod.Volumes {
		if v.Name != vol {
			continue
		}
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == "" {
			t.Errorf("spool volume %s: want an emptyDir with a sizeLimit", vol)
			return
		}
		limit, err := quantityBytes(v.EmptyDir.SizeLimit)
		if err != nil {
			t.Fatalf("sizeLimit %q: %v", v.EmptyDir.SizeLimit, err)
		}
		if int64(cfg.SpoolMaxBytes) >= limit {
			t.Errorf("--spool-max-bytes %d is not below the spool volume's sizeLimit %s: the kubelet would evict the pod first", cfg.SpoolMaxBytes, v.EmptyDir.SizeLimit)
		}
		return
	}
	t.Errorf("the spool directory %s is not on a volume (a read-only root filesystem has nowhere to write)", cfg.SpoolDir)
}

// quantityBytes reads a Kubernetes memory quantity like 1Gi, 512Mi or 2G.
func quantityBytes(q string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(q, 10, 64)
}
