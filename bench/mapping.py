"""make bench, scenario "mapping": what each choice of replaylink's index
template costs or saves the search node (issue 17, point 2), in CPU per
document and bytes on disk per document.

The same spool of access documents (generate_spool: the proxied requests of
the shipping scenario) is bulk-loaded by bench/bulkload -mode raw into an
index made from each variant of the template:

- "before issue 17": the template as it was (dynamic string fields as
  keywords, payloads indexed, doc values and norms everywhere);
- that template with one choice applied, each alone;
- "replaylink's template": what `ship/template.go` installs now (the
  choices kept), and two settings measured but not kept (a longer refresh
  interval delays what a replay shows; best_compression trades CPU for
  disk);
- "OpenReplay's fields only": the same documents with only what
  OpenReplay's query and player need indexed, the rest in _source. Not a
  choice (Kibana users could no longer search by trace.id, url.path or
  status): the floor of the node's cost per document for these documents.

CPU: the node's CPU seconds from the first bulk request until the index is
refreshed, per document. Bytes: the index's store size after a force merge
to one segment and a flush, per document (without the merge the size
depends on where the node's background merges happen to be). The spool holds access documents only: choices about backend
payloads (stack traces, original lines) cannot show on it, and are said to.
"""
import copy
import json
import time
import urllib.request

TEMPLATE = "replaylink-logs"
INDEX = "logs"

# Fields `ship/template.go` keeps in _source only, and those without doc
# values: the choices below undo or apply them one at a time.
PAYLOADS = [("error", "stack_trace"), ("event", "original"), ("http", "response", "body", "content")]
SEARCH_ONLY = [("http", "request", "id"), ("trace", "id"), ("span", "id"), ("url", "query"),
               ("user_agent", "original"), ("replaylink", "candidates")]
TEXTS = [("message",), ("error", "message")]
# What OpenReplay's contract needs indexed: its match_phrase on message, the
# documented utc_time and tags query, the player's @timestamp and level, and
# the session, which lookup searches.
OPENREPLAY = [("message",), ("@timestamp",), ("utc_time",), ("level",), ("tags",), ("openReplaySession", "id")]


def es(h, method, path, body=None):
    req = urllib.request.Request(h.ES_URL.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        if method == "DELETE" and e.code == 404:
            return {}
        raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from e


def prop(mappings, path):
    m = mappings
    for k in path[:-1]:
        m = m["properties"][k]
    return m["properties"], path[-1]


def before(current):
    """The template before issue 17, from the current one."""
    m = copy.deepcopy(current)
    m["dynamic"] = True
    m["dynamic_templates"] = [{"strings_as_keyword": {"match_mapping_type": "string",
                                                      "mapping": {"type": "keyword", "ignore_above": 1024}}}]
    for path in PAYLOADS:
        props, k = prop(m, path)
        props[k] = {"type": "text"} if k == "stack_trace" else {"type": "keyword", "ignore_above": 1024}
    for path in SEARCH_ONLY:
        props, k = prop(m, path)
        props[k].pop("doc_values", None)
    for path in TEXTS:
        props, k = prop(m, path)
        props[k].pop("norms", None)
    return m


def variants(current):
    base = before(current)

    def apply(fn):
        m = copy.deepcopy(base)
        fn(m)
        return m

    def unknown_not_indexed(m):
        m["dynamic"] = False
        m.pop("dynamic_templates", None)

    def payloads(m):
        for path in PAYLOADS:
            props, k = prop(m, path)
            props[k] = {"type": "text", "index": False}

    def doc_values(m):
        for path in SEARCH_ONLY:
            props, k = prop(m, path)
            props[k]["doc_values"] = False

    def norms(m):
        for path in TEXTS:
            props, k = prop(m, path)
            props[k]["norms"] = False

    def openreplay_only(current):
        m = {"dynamic": False, "properties": {}}
        for path in OPENREPLAY:
            src, k = prop(current, path)
            dst = m
            for p in path[:-1]:
                dst = dst["properties"].setdefault(p, {"properties": {}})
            dst["properties"][k] = copy.deepcopy(src[k])
        return m

    return [
        ("before issue 17", base, {}),
        ("+ unknown fields not indexed", apply(unknown_not_indexed), {}),
        ("+ payloads in _source only", apply(payloads), {}),
        ("+ no doc values on ids", apply(doc_values), {}),
        ("+ no norms on message", apply(norms), {}),
        ("replaylink's template", current, {}),
        ("replaylink's template, refresh 5s (not kept)", current, {"index.refresh_interval": "5s"}),
        ("replaylink's template, best_compression (not kept)", current, {"index.codec": "best_compression"}),
        # The floor of any template that keeps OpenReplay working: every other
        # field in _source only, which would break the Kibana searches the
        # issue keeps (trace.id, url.path, status, error.message).
        ("OpenReplay's fields only (the floor, not kept)", openreplay_only(current), {}),
    ]


def load(h, spool, mappings, settings):
    """Makes the index from this variant, loads the spool into it; returns
    (node CPU seconds, store bytes, documents)."""
    h.bulkload(["-mode", "prepare", "-es", h.ES_URL], cpu=h.LOAD_CPU)  # the current template, the index
    es(h, "DELETE", "/" + INDEX)
    t = es(h, "GET", "/_index_template/" + TEMPLATE)["index_templates"][0]["index_template"]
    t["template"]["mappings"] = mappings
    t["template"].setdefault("settings", {}).setdefault("index", {}).update(
        {k.split(".", 1)[1]: v for k, v in settings.items()})
    t.pop("_meta", None)  # not replaylink's any more: a later setup replaces it
    es(h, "PUT", "/_index_template/" + TEMPLATE, t)
    es(h, "PUT", "/" + INDEX)
    node0 = h.es_cpu()
    h.bulkload(["-mode", "raw", "-spool", h.copy_spool(spool, "mapping-spool"), "-es", h.ES_URL,
                "-flush-bytes", "5000000", "-workers", "2"])
    es(h, "POST", f"/{INDEX}/_refresh")
    cpu = h.es_cpu() - node0
    # Merged to one segment, so that the size does not depend on where the
    # node's background merges happen to be (not in the CPU figure).
    es(h, "POST", f"/{INDEX}/_forcemerge?max_num_segments=1")
    es(h, "POST", f"/{INDEX}/_flush")
    # A refresh releases the reader still holding the merged-away segments:
    # without it their files were counted too, and the same variant measured
    # 116 to 597 bytes per document from round to round.
    es(h, "POST", f"/{INDEX}/_refresh")
    st = es(h, "GET", f"/{INDEX}/_stats/store,docs")["_all"]["primaries"]
    return cpu, st["store"]["size_in_bytes"], st["docs"]["count"]


def scenario_mapping(res, h, backend):
    h.log("== 8. the index template's choices: the search node's CPU and bytes per document")
    spool, n, _ = h.generate_spool(backend)
    h.bulkload(["-mode", "prepare", "-es", h.ES_URL], cpu=h.LOAD_CPU)
    current = es(h, "GET", "/_index_template/" + TEMPLATE)["index_templates"][0]["index_template"]["template"]["mappings"]
    vs = variants(current)
    load(h, spool, vs[0][1], {})  # warm-up: the node's JIT, not kept
    runs = []
    for rnd in range(h.ROUNDS):
        order = vs if rnd % 2 == 0 else list(reversed(vs))
        for name, mappings, settings in order:
            cpu, size, docs = load(h, spool, mappings, settings)
            r = {"round": rnd, "variant": name, "docs": docs, "expected": n, "node_cpu_s": cpu,
                 "node_us_per_doc": cpu / max(docs, 1) * 1e6, "bytes_per_doc": size / max(docs, 1), "load": h.loadavg()}
            runs.append(r)
            h.log(f"  round {rnd} {name:52s} {r['node_us_per_doc']:6.1f} us/doc  {r['bytes_per_doc']:6.0f} B/doc  "
                  f"({docs} of {n} documents)")
    h.bulkload(["-mode", "prepare", "-es", h.ES_URL], cpu=h.LOAD_CPU)  # replaylink's own template again
    res["mapping"] = {"docs": n, "variants": [v[0] for v in vs], "runs": runs}
