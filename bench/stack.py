"""make bench, scenario "stack": the same job done by replaylink and by what a
user would assemble instead, side by side (issue 17, point 1).

The job: every request through the proxy becomes a document in the search
node's `logs` index that OpenReplay finds (`message` holding
`[openReplaySession.id=N]`, `@timestamp`, `utc_time`, a lowercase `level`,
`tags`), searchable within seconds.

- **replaylink**: `replaylink serve --es-url NODE` (proxy, spool and shipper
  in one process).
- **nginx + rsyslog**: nginx as the reverse proxy writing one JSON document
  per request to its access log, and rsyslog (`imfile` -> `omelasticsearch`,
  Debian's rsyslog-elasticsearch) shipping that file into the same node.
  nginx cannot name the header `openReplaySession.id` in a variable: it drops
  header names with a dot unless `ignore_invalid_headers off`, and even then
  `$http_*` variables cannot hold a dot (`$http_openreplaysession_id` matches
  `openReplaySession_id`, not the dot). So its njs module
  (libnginx-mod-http-js) reads the header and builds `message` and the
  millisecond timestamp; a `map` on `$status` gives `level` and the `error`
  tag.

Both write into the same index with replaylink's template (bench/bulkload
-mode prepare before each run), so the node does the same work per document
but for the documents' own size. At each fixed rate, bench/loadgen drives the
proxy open loop; the CPU of every process (proxy, shipper, search node) is
read from /proc from the start of the load until every document is
searchable (`_count` without a forced refresh), and the p99 added is the
proxy's p99 minus the backend's own at that rate. The highest fully indexed
rate climbs a ladder of rates until the documents of a run are not all
searchable within 5 s of its end (or requests fail, or the proxy falls
behind the rate).

CPU layout: the search node is pinned alone on CPU 0 with the load
generator (which costs little at these rates); the proxy, the shipper and the
backend share CPU 1, as a sidecar shares its pod. The node's idle CPU (measured
for 3 s before each stack's runs) is subtracted.
"""
import json
import os
import shutil
import time
import urllib.request

NJS = r"""
// replaylink bench: what nginx needs to write an OpenReplay document.
function session(r) {
    var v = r.headersIn['openReplaySession.id'];
    return (v && /^[0-9]{1,20}$/.test(v)) ? v : '';
}
function message(r) {
    var s = session(r);
    var m = r.method + ' ' + r.variables.request_uri + ' -> ' + r.variables.status +
        ' (' + (parseFloat(r.variables.request_time) * 1000).toFixed(1) + ' ms)';
    return s ? '[openReplaySession.id=' + s + '] ' + m : m;
}
function now(r) {
    return new Date(parseFloat(r.variables.msec) * 1000).toISOString();
}
export default {session, message, now};
"""

NGINX_BODY = """  js_import or from {njs};
  js_set $or_session or.session;
  js_set $or_message or.message;
  js_set $or_time or.now;
  map $status $or_level {{ ~^5 error; ~^4 warning; default info; }}
  map $status $or_tag {{ ~^5 error; default ok; }}
  ignore_invalid_headers off;
  log_format openreplay escape=json '{{"@timestamp":"$or_time","utc_time":"$or_time","message":"$or_message",'
    '"level":"$or_level","tags":["access","$or_tag"],"openReplaySession":{{"id":"$or_session"}},'
    '"event":{{"dataset":"nginx.access"}},'
    '"http":{{"request":{{"method":"$request_method"}},"response":{{"status_code":"$status","bytes":"$body_bytes_sent"}}}},'
    '"url":{{"path":"$uri","query":"$args"}},"client":{{"ip":"$remote_addr"}},'
    '"user_agent":{{"original":"$http_user_agent"}},"service":{{"name":"bench"}}}}';
  access_log {log} openreplay;
"""

# searchType="": no `_type` in the bulk metadata, which Elasticsearch 8 and
# OpenSearch 2 refuse (rsyslog 8.2302 still sends "events" by default).
# The ruleset queue is a LinkedList that dequeues up to 1000 lines into one
# bulk request; resumeRetryCount -1 retries a failed bulk forever rather than
# drop it (replaylink's spool keeps what it cannot send, too).
RSYSLOG_STACK_CONF = """global(workDirectory="{state}" maxMessageSize="64k")
module(load="imfile")
module(load="omelasticsearch")
template(name="doc" type="string" string="%msg%")
ruleset(name="ship" queue.type="LinkedList" queue.dequeueBatchSize="1000") {{
  action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" searchIndex="logs"
         searchType="" bulkmode="on" maxbytes="5m" template="doc" action.resumeRetryCount="-1")
}}
input(type="imfile" file="{log}" tag="nginx" ruleset="ship")
"""

STACKS = ("replaylink", "nginx+rsyslog")
SEARCHABLE_WITHIN = 5.0  # seconds after a run's end


def fmt_s(x):
    return "never (60 s)" if x is None else f"{x:.1f} s"


def njs_available():
    return os.path.exists("/usr/lib/nginx/modules/ngx_http_js_module.so")


def count(es_url):
    """The index's document count as a search sees it now (no refresh)."""
    with urllib.request.urlopen(es_url.rstrip("/") + "/logs/_count", timeout=10) as r:
        return json.loads(r.read())["count"]


class Stack:
    """The processes of one stack: proxy (the load's target) and shipper
    (the same process for replaylink)."""

    def __init__(self, h, name, backend, extra=()):
        self.h, self.name = h, name
        if name == "replaylink":
            self.proxy = h.start_replaylink("stack-replaylink", backend.port, es_url=h.ES_URL, extra=extra)
            self.procs = {"proxy+shipper": self.proxy}
            return
        d = os.path.join(h.WORK, "stack-nginx")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "state"))
        njs, log = os.path.join(d, "openreplay.js"), os.path.join(d, "openreplay.log")
        with open(njs, "w") as f:
            f.write(NJS)
        open(log, "w").close()
        port = h.free_port()
        cmd = h.nginx_conf("stack-nginx", NGINX_BODY.format(njs=njs, log=log) + h.nginx_proxy_block(port, backend.port))
        # the njs module must load before the http block: prepend it
        conf = cmd[-1]
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write('load_module "/usr/lib/nginx/modules/ngx_http_js_module.so";\n' + text)
        self.proxy = h.Proc("stack-nginx", cmd, cpu=h.SUT_CPU, port=port)
        rconf = os.path.join(d, "rsyslog.conf")
        with open(rconf, "w") as f:
            f.write(RSYSLOG_STACK_CONF.format(state=os.path.join(d, "state"), port=h.ES_URL.rsplit(":", 1)[1].strip("/"),
                                              log=log))
        shipper = h.Proc("stack-rsyslog", ["rsyslogd", "-n", "-f", rconf, "-i", os.path.join(d, "rsyslog.pid")],
                         cpu=h.SUT_CPU)
        self.procs = {"proxy": self.proxy, "shipper": shipper}

    def cpu(self):
        return {k: p.cpu() for k, p in self.procs.items()}

    def stop(self):
        for p in self.procs.values():
            p.stop()


def node_idle_rate(h, seconds=3.0):
    c0 = h.es_cpu()
    time.sleep(seconds)
    return (h.es_cpu() - c0) / seconds


def run_at(h, stack, rate, seconds, idle_rate, bare_share=0.0, kept_share=1.0):
    """One open-loop run of stack at rate; returns the measurements.
    bare_share of the requests have no session; kept_share of the requests
    become documents (less than 1 with --sessionless errors)."""
    base = count(h.ES_URL)
    cpu0, node0, t0 = stack.cpu(), h.es_cpu(), time.time()
    r = h.loadgen(["-url", f"http://127.0.0.1:{stack.proxy.port}{h.PATH}", "-rate", str(rate),
                   "-duration", f"{seconds}s", "-conns", str(h.CONNS), "-bare-share", str(bare_share)])
    end = time.time()
    want = base + r["ok"] + r["non_2xx"]
    if kept_share < 1:
        # loadgen sends request k (from 1) bare when k % 100 < 100 * bare_share
        sent = r["ok"] + r["non_2xx"] + r["errors"]
        want = base + sum(1 for k in range(1, sent + 1) if k % 100 >= round(100 * bare_share))
    lag, n = None, base
    while time.time() - end < 60:
        n = count(h.ES_URL)
        if n >= want:
            lag = time.time() - end
            break
        time.sleep(0.1)
    elapsed = time.time() - t0
    cpu1, node1 = stack.cpu(), h.es_cpu()
    logged = max(r["ok"] + r["non_2xx"], 1)
    out = {"stack": stack.name, "rate": rate, "achieved_rps": r["rps"], "ok": r["ok"], "errors": r["errors"],
           "p50_us": r["p50_us"], "p99_us": r["p99_us"], "documents": n - base, "expected": want - base,
           "searchable_after_s": lag,
           "cpu_ms_per_1k": {k: (cpu1[k] - cpu0[k]) / logged * 1e6 for k in cpu0}}
    out["cpu_ms_per_1k"]["search node"] = max(node1 - node0 - idle_rate * elapsed, 0) / logged * 1e6
    out["cpu_ms_per_1k_total"] = sum(out["cpu_ms_per_1k"].values())
    out["complete"] = lag is not None and lag <= SEARCHABLE_WITHIN and r["errors"] == 0 and \
        r["rps"] >= 0.97 * rate
    return out


def sessionless_savings(h, backend, rate, seconds, share=0.8):
    """What --sessionless errors saves the cluster when share of the traffic
    has no session (health checks, bots, server-to-server calls): the same
    run with all and with errors, every request logged either way."""
    runs = []
    for rnd in range(h.ROUNDS):
        for policy in ("all", "errors") if rnd % 2 == 0 else ("errors", "all"):
            h.bulkload(["-mode", "prepare", "-es", h.ES_URL], cpu=h.LOAD_CPU)
            stack = Stack(h, "replaylink", backend, extra=("--sessionless", policy))
            try:
                kept = 1 - share if policy == "errors" else 1.0  # every request succeeds: no errors
                run_at(h, stack, rate, max(seconds // 2, 2), 0, share, kept)
                idle = node_idle_rate(h)
                r = run_at(h, stack, rate, seconds, idle, share, kept)
            finally:
                stack.stop()
            r.update(round=rnd, policy=policy, sessionless_share=share, load=h.loadavg())
            runs.append(r)
            h.log(f"  round {rnd} --sessionless {policy:6s} {rate}/s, {share:.0%} without a session: "
                  f"{r['documents']} documents, search node {r['cpu_ms_per_1k']['search node']:.0f} CPU-ms per 1k requests")
    return runs


def scenario_stack(res, h):
    h.log("== 7. the same job side by side: replaylink vs nginx + rsyslog into the same node")
    if not njs_available() or shutil.which("rsyslogd") is None:
        raise RuntimeError("stack: needs libnginx-mod-http-js and rsyslog-elasticsearch (bench/run.sh installs them)")
    rates = [int(x) for x in os.environ.get("BENCH_STACK_RATES", "300,1000,3000" if h.QUICK else "1000,3000,6000").split(",")]
    ladder = [int(x) for x in os.environ.get("BENCH_STACK_LADDER",
                                             "6000,9000" if h.QUICK else "6000,8000,10000,12000,15000,18000").split(",")]
    seconds = h.env_num("BENCH_STACK_SECONDS", 10, 3)
    backend = h.start_backend("stack-backend", h.SUT_CPU)
    direct = {}
    for rate in sorted(set(rates)):
        direct[rate] = h.loadgen(["-url", f"http://127.0.0.1:{backend.port}{h.PATH}", "-rate", str(rate),
                                  "-duration", f"{seconds}s", "-conns", str(h.CONNS)])["p99_us"]
    runs, highest = [], {}
    for rnd in range(h.ROUNDS):
        for name in STACKS if rnd % 2 == 0 else tuple(reversed(STACKS)):
            h.bulkload(["-mode", "prepare", "-es", h.ES_URL], cpu=h.LOAD_CPU)
            stack = Stack(h, name, backend)
            try:
                run_at(h, stack, rates[len(rates) // 2], max(seconds // 2, 2), 0)  # warm-up, not kept
                idle = node_idle_rate(h)
                for rate in rates:
                    r = run_at(h, stack, rate, seconds, idle)
                    r.update(round=rnd, p99_added_us=r["p99_us"] - direct[rate], load=h.loadavg())
                    runs.append(r)
                    h.log(f"  round {rnd} {name:14s} {rate:6d}/s: {r['cpu_ms_per_1k_total']:7.0f} CPU-ms per 1k "
                          f"({', '.join(f'{k} {v:.0f}' for k, v in r['cpu_ms_per_1k'].items())}), "
                          f"p99 +{r['p99_added_us']:.0f} us, searchable after {fmt_s(r['searchable_after_s'])}")
                if rnd == 0:
                    best = max([r["rate"] for r in runs if r["stack"] == name and r["complete"]], default=0)
                    for rate in ladder:
                        if rate <= best:
                            continue
                        r = run_at(h, stack, rate, seconds, idle)
                        h.log(f"  ladder {name:14s} {rate:6d}/s: achieved {r['achieved_rps']:.0f}/s, errors "
                              f"{r['errors']}, searchable after {fmt_s(r['searchable_after_s'])}")
                        if not r["complete"]:
                            break
                        best = rate
                    highest[name] = best
            finally:
                stack.stop()
    sessionless = sessionless_savings(h, backend, rates[len(rates) // 2], seconds)
    backend.stop()
    res["stack"] = {"sessionless_runs": sessionless, "seconds": seconds, "rates": rates, "ladder": ladder, "direct_p99_us": direct, "runs": runs,
                    "highest_complete_rate": highest, "searchable_within_s": SEARCHABLE_WITHIN,
                    "nginx_body": NGINX_BODY, "njs": NJS.strip(), "rsyslog_conf": RSYSLOG_STACK_CONF}
