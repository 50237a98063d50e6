package examples_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/replaylink/replaylink/config"
)

// No Docker engine runs where the tests run, so the compose file and the
// Dockerfiles are checked for their structure and wiring here; `docker
// compose config` also runs when a compose client is installed.

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

// interpolation is compose's ${VAR:-default}; the tests take the defaults,
// as `docker compose up` does with nothing set.
var interpolation = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

func loadCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	raw := string(readFile(t, filepath.Join("..", "docker-compose.yml")))
	var c composeFile
	if err := yaml.Unmarshal([]byte(interpolation.ReplaceAllString(raw, "$2")), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c, raw
}

// published maps container ports to host ports, and checks that each is
// published on the host's loopback only.
func published(t *testing.T, name string, s composeService) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if len(parts) != 3 || parts[0] != "127.0.0.1" {
			t.Errorf("service %s publishes %q; publish demo ports on 127.0.0.1 only (127.0.0.1:HOST:CONTAINER)", name, p)
			continue
		}
		out[parts[2]] = parts[1]
	}
	return out
}

func TestCompose(t *testing.T) {
	c, raw := loadCompose(t)
	for _, name := range []string{"elasticsearch", "kibana", "replaylink-setup", "api", "openreplay-stub", "frontend"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %s", name)
		}
	}
	svc := c.Services

	// Elasticsearch 8, one node, security off, and the file says so.
	es := svc["elasticsearch"]
	if !strings.Contains(es.Image, "elasticsearch/elasticsearch:8.") {
		t.Errorf("elasticsearch image %q, want Elasticsearch 8", es.Image)
	}
	if es.Environment["discovery.type"] != "single-node" || es.Environment["xpack.security.enabled"] != "false" {
		t.Errorf("elasticsearch environment %v: want a single node with security off", es.Environment)
	}
	if !strings.Contains(raw, "security off") {
		t.Error("docker-compose.yml does not say that security is off for the demo")
	}
	if ver := es.Image[strings.LastIndex(es.Image, ":"):]; !strings.HasSuffix(svc["kibana"].Image, ver) {
		t.Errorf("kibana %q and elasticsearch %q differ in version", svc["kibana"].Image, es.Image)
	}
	if !strings.Contains(svc["kibana"].Environment["ELASTICSEARCH_HOSTS"], "http://elasticsearch:9200") {
		t.Errorf("kibana does not point at the elasticsearch service: %v", svc["kibana"].Environment)
	}

	// Dependencies name real services, and their conditions can be met.
	for name, s := range svc {
		for dep, d := range s.DependsOn {
			target, ok := svc[dep]
			switch {
			case d.Condition != "service_started" && d.Condition != "service_healthy" && d.Condition != "service_completed_successfully":
				t.Errorf("%s depends on %s with condition %q; compose knows service_started, service_healthy, service_completed_successfully", name, dep, d.Condition)
			case !ok:
				t.Errorf("%s depends on unknown service %s", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("%s waits for %s to complete, which is not a one-shot (restart: \"no\")", name, dep)
			}
		}
		published(t, name, s)
		if s.Build != nil {
			ctx := filepath.Join("..", s.Build.Context)
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("service %s builds %s in %s: %v", name, df, s.Build.Context, err)
			}
		}
		for _, v := range s.Volumes {
			if vol, _, _ := strings.Cut(v, ":"); !strings.HasPrefix(vol, ".") && !strings.HasPrefix(vol, "/") {
				if _, ok := c.Volumes[vol]; !ok {
					t.Errorf("service %s mounts undeclared volume %s", name, vol)
				}
			}
		}
	}
	for _, name := range []string{"elasticsearch", "kibana", "api"} {
		if svc[name].Healthcheck == nil || len(svc[name].Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}

	// replaylink setup: a valid one-shot against the elasticsearch service.
	setup := svc["replaylink-setup"]
	if len(setup.Command) == 0 || setup.Command[0] != "setup" {
		t.Errorf("replaylink-setup command %v, want setup", setup.Command)
	}
	checkEnvNames(t, "replaylink-setup", setup.Environment)
	if _, _, err := config.Load(config.Commands["setup"], setup.Command[1:],
		func(k string) string { return setup.Environment[k] }, nil); err != nil {
		t.Errorf("replaylink-setup: replaylink would refuse its configuration: %v", err)
	}

	checkComposeAPI(t, svc)
}

// checkComposeAPI checks the api service: replaylink run in front of Flask.
func checkComposeAPI(t *testing.T, svc map[string]composeService) {
	api := svc["api"]
	cmd := api.Command
	if len(cmd) < 4 || filepath.Base(cmd[0]) != "replaylink" || cmd[1] != "run" {
		t.Fatalf("api command %v, want replaylink run ... -- python3 app.py", cmd)
	}
	cfg := loadConfig(t, "api", cmd[2:], api.Environment)
	var child []string
	for i, a := range cmd {
		if a == "--" {
			child = cmd[i+1:]
		}
	}
	if strings.Join(child, " ") != "python3 app.py" {
		t.Errorf("api runs %v under replaylink, want python3 app.py (the README's command)", child)
	}
	ports := published(t, "api", api)
	listenHost, listenPort := hostPort(t, "api REPLAYLINK_LISTEN", cfg.Listen)
	adminHost, adminPort := hostPort(t, "api REPLAYLINK_ADMIN", cfg.AdminListen)
	if isLoopback(listenHost) || isLoopback(adminHost) {
		t.Errorf("api listens on %s and %s; inside a container, loopback is unreachable from the host", cfg.Listen, cfg.AdminListen)
	}
	if ports[listenPort] == "" || ports[adminPort] == "" {
		t.Errorf("api publishes %v, but replaylink listens on %s and %s", api.Ports, listenPort, adminPort)
	}
	if cfg.AllowRemoteAdmin && cfg.AdminToken == "" && ports[adminPort] == "" {
		t.Error("lookup is open without a token on an admin port that is not published on loopback only")
	}
	if len(cfg.Upstreams) != 1 || cfg.Upstreams[0] != "http://127.0.0.1:"+api.Environment["PORT"] {
		t.Errorf("upstream %v, want http://127.0.0.1:$PORT (PORT=%s, where app.py listens)", cfg.Upstreams, api.Environment["PORT"])
	}
	if !strings.Contains(string(readFile(t, filepath.Join("flask", "app.py"))), `os.environ.get("PORT"`) {
		t.Error("examples/flask/app.py does not read PORT")
	}
	if len(cfg.ESURLs) != 1 || cfg.ESURLs[0] != "http://elasticsearch:9200" {
		t.Errorf("es-url %v, want the elasticsearch service", cfg.ESURLs)
	}
	if cfg.TokenSecret == "" || cfg.TokenSecret != svc["openreplay-stub"].Environment["OPENREPLAY_TOKEN_SECRET"] {
		t.Error("replaylink's token secret is not the one the OpenReplay stand-in signs with")
	}

	// The page's defaults are the ports compose publishes.
	page := string(readFile(t, filepath.Join("frontend", "src", "main.js")))
	frontendPorts := published(t, "frontend", svc["frontend"])
	for what, want := range map[string]string{
		"api":    ports[listenPort],
		"ingest": published(t, "openreplay-stub", svc["openreplay-stub"])["9000"],
		"admin":  ports[adminPort],
	} {
		m := regexp.MustCompile(`params\.get\('` + what + `'\) \|\| ` + "`\\$\\{here\\}:(\\d+)").FindStringSubmatch(page)
		if m == nil || m[1] != want {
			t.Errorf("the page's default %s port is %v, compose publishes %s", what, m, want)
		}
	}
	for _, hostPort := range frontendPorts {
		if !strings.Contains(api.Environment["ALLOWED_ORIGINS"], "http://localhost:"+hostPort) {
			t.Errorf("ALLOWED_ORIGINS %q lacks the page's origin http://localhost:%s", api.Environment["ALLOWED_ORIGINS"], hostPort)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := string(readFile(t, filepath.Join("..", "Dockerfile")))
	var froms []string
	var user, final string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
			user = ""
		case "USER":
			user = f[1]
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(froms))
	}
	final = froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") && !strings.HasPrefix(final, "alpine") {
		t.Errorf("final image %s, want a small base (distroless/static or alpine)", final)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") || !strings.Contains(df, "./cmd/replaylink") {
		t.Error("Dockerfile does not build ./cmd/replaylink as a static binary (CGO_ENABLED=0)")
	}
	ignore := string(readFile(t, filepath.Join("..", ".dockerignore")))
	for _, want := range []string{".git", "node_modules"} {
		if !strings.Contains(ignore, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// TestComposeConfig asks a compose client to validate the file when one is
// installed (it needs no engine for `config`). Compose v1 (Debian's
// docker-compose 1.29) predates the spec's top-level name, so it gets a copy
// without that line.
func TestComposeConfig(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	} else if v, err := exec.Command("docker-compose", "version", "--short").Output(); err == nil {
		file := filepath.Join(root, "docker-compose.yml")
		if strings.HasPrefix(string(v), "1.") {
			raw := readFile(t, file)
			file = filepath.Join(t.TempDir(), "docker-compose.yml")
			stripped := regexp.MustCompile(`(?m)^name: .*\n`).ReplaceAll(raw, nil)
			if err := os.WriteFile(file, stripped, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd = exec.Command("docker-compose", "--project-directory", root, "-f", file, "config", "-q")
	} else {
		t.Skip("no compose client (docker compose or docker-compose) installed; TestCompose checks the structure")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}
