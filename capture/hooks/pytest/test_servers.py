"""The hook under real servers: each test app (capture/hooks/testdata/python)
is served with the hook and a random nonce, gets 64 concurrent requests with
their own traceparent (plus some without one), then pool and thread
requests; its stdout and stderr are then checked line by line.

Tags: "t" + 12 hex for a request with a traceparent, "n" + 12 hex for one
without. A line holding a tag belongs to that request: the access line (the
tag is in the query), "start T", "print T", "end T", "fail T",
"RuntimeError: boom T", and "pool T" / "thread T" (derived).
"""

import random
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import rlmarks
from conftest import APPS_DIR, PY, Server, free_port, get, hooked_env


def _servers():
    uvicorn = [PY, "-m", "uvicorn", "asgi_app:app", "--app-dir", APPS_DIR, "--host", "127.0.0.1"]
    gunicorn = [PY, "-m", "gunicorn", "--access-logfile", "-", "--no-control-socket", "--graceful-timeout", "2"]
    return {
        # name: (argv for a port, the app's kind[, extra environment])
        "werkzeug-threaded": (lambda p: [PY, "flask_app.py", str(p)], "wsgi"),
        "werkzeug-reloader": (lambda p: [PY, "flask_app.py", str(p)], "wsgi", {"FLASK_RELOAD": "1"}),
        "gunicorn-sync-w2": (lambda p: gunicorn + ["-w", "2", "-b", "127.0.0.1:%d" % p, "flask_app:app"], "wsgi"),
        "gunicorn-gthread-w2-t4": (
            lambda p: gunicorn + ["-w", "2", "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:%d" % p, "flask_app:app"],
            "wsgi",
        ),
        "gunicorn-uvicorn-worker-w2": (
            lambda p: gunicorn + ["-w", "2", "-k", "uvicorn.workers.UvicornWorker", "-b", "127.0.0.1:%d" % p, "asgi_app:app"],
            "asgi",
        ),
        "uvicorn": (lambda p: uvicorn + ["--port", str(p)], "asgi"),
        "uvicorn-workers2-h11": (lambda p: uvicorn + ["--port", str(p), "--workers", "2", "--http", "h11"], "asgi"),
        "django-runserver": (lambda p: [PY, "django_app.py", str(p)], "wsgi"),  # with its autoreloader
        "django-runserver-noreload": (lambda p: [PY, "django_app.py", str(p)], "wsgi", {"DJANGO_NORELOAD": "1"}),
        "http.server": (lambda p: [PY, "plain_app.py", str(p)], "plain"),
    }


SERVERS = _servers()
TAG = re.compile(r"(?<![0-9a-z])([tn][0-9a-f]{12})(?![0-9a-z])")

# Lines of a traceback, or of the header a server or framework writes with
# it; none of them holds a tag except the last ("RuntimeError: boom T").
TRACEBACK_HEADERS = (
    "Exception on /fail [GET]",  # Flask (and plain_app.py)
    "Exception in ASGI application",  # uvicorn
    "Internal Server Error: /fail",  # Django
    "Exception occurred during processing of request from",  # socketserver
)


def is_traceback_line(text):
    return (
        text.startswith("Traceback (most recent call last)")
        or text.startswith("  ")
        or text.startswith("RuntimeError: boom")
        or text.startswith("During handling of the above exception")
        or text.startswith("The above exception was the direct cause")
        or text == "-" * 40
        or any(h in text for h in TRACEBACK_HEADERS)
    )


class Request(object):
    def __init__(self, path, traced=True, ms=None):
        self.tag = ("t" if traced else "n") + secrets.token_hex(6)
        self.span = rlmarks.new_span() if traced else None
        self.path = path
        self.url = "/%s?tag=%s" % (path, self.tag) + ("&ms=%d" % ms if ms is not None else "")
        self.status = None

    def send(self, port, barrier=None):
        headers = {"traceparent": rlmarks.traceparent(self.span)} if self.span else {}
        if barrier is not None:
            try:
                barrier.wait(10)
            except threading.BrokenBarrierError:
                pass
        self.status, _ = get(port, self.url, headers=headers, timeout=20)


def fire(port, requests):
    """Sends requests all at once, each on its own connection."""
    barrier = threading.Barrier(len(requests))
    with ThreadPoolExecutor(max_workers=len(requests)) as ex:
        for f in [ex.submit(r.send, port, barrier) for r in requests]:
            f.result(timeout=60)


class Run(object):
    """One served run: the requests and the server's output, parsed."""

    def __init__(self, name, nonce, requests, out, err):
        self.name = name
        self.nonce = nonce
        self.requests = requests
        self.by_tag = {r.tag: r for r in requests}
        self.out, self.err = out, err
        self.out_lines = rlmarks.lines(out, nonce)
        self.err_lines = rlmarks.lines(err, nonce)
        self.all_lines = self.out_lines + self.err_lines

    def failing_spans(self):
        return {r.span for r in self.requests if r.path in ("fail", "crash") and r.span}

    def dump(self):
        return "\n".join(repr(line) for line in self.all_lines[:400])


def _all_answered(requests):
    def seen(data):
        text = rlmarks.strip(data, "0" * 16).decode("utf-8", "replace")
        for r in requests:
            needle = ("boom " + r.tag) if r.path == "crash" else ("?tag=" + r.tag)
            if needle not in text:
                return False
        return True

    return seen


@pytest.fixture(scope="module", params=sorted(SERVERS))
def served(request, tmp_path_factory):
    name = request.param
    argv_for, kind = SERVERS[name][:2]
    nonce = rlmarks.new_nonce()
    port = free_port()
    rng = random.Random()
    env = hooked_env(nonce)
    env.update(SERVERS[name][2] if len(SERVERS[name]) > 2 else {})
    server = Server(name, argv_for(port), env, str(tmp_path_factory.mktemp(name)))
    try:
        server.wait_ready(port)
        # 1. 64 concurrent requests with a traceparent: /work with 20-80 ms
        # of work, some /fail; and 8 without a traceparent.
        burst = []
        for i in range(64):
            if i % 8 == 7:
                burst.append(Request("fail"))
            elif kind == "asgi" and i % 8 == 3:
                burst.append(Request("work_sync", ms=rng.randint(20, 80)))
            else:
                burst.append(Request("work", ms=rng.randint(20, 80)))
        burst += [Request("work", traced=False, ms=rng.randint(20, 80)) for _ in range(8)]
        if kind == "plain":
            burst += [Request("crash") for _ in range(2)]
        rng.shuffle(burst)
        fire(port, burst)
        # 2. The pool is made by the first /pool request, then reused by
        # others, concurrently with threads started by requests.
        first = Request("pool")
        first.send(port)
        # Requests without a traceparent submit to the same pool outside any
        # request: their jobs must stay unmarked (the pool's threads must
        # not keep the request that made them).
        derived = [Request("pool") for _ in range(8)] + [Request("thread") for _ in range(8)]
        derived += [Request("pool", traced=False) for _ in range(4)] + [Request("thread", traced=False) for _ in range(2)]
        fire(port, derived)
        requests = burst + [first] + derived
        server.wait_output(_all_answered(requests))
    finally:
        server.stop()
    out, err = server.output()
    return Run(name, nonce, requests, out, err)


def test_answers(served):
    want = {"work": 200, "work_sync": 200, "fail": 500, "pool": 200, "thread": 200, "crash": None}
    wrong = [(r.url, r.status) for r in served.requests if r.status != want[r.path]]
    assert not wrong, wrong


def test_every_line_with_a_tag_carries_its_request(served):
    wrong = []
    for line in served.all_lines:
        tags = set(TAG.findall(line.text))
        if not tags:
            continue
        if len(tags) > 1:
            wrong.append(("two requests in one line", line))
            continue
        req = served.by_tag.get(tags.pop())
        if req is None:
            wrong.append(("unknown tag", line))
            continue
        if req.span is None:
            want = None  # no traceparent: no request context
        elif line.text in ("pool " + req.tag, "thread " + req.tag):
            want = ("d", req.span)
        else:
            want = ("r", req.span)
        if line.mark != want:
            wrong.append(("want %r" % (want,), line))
    assert not wrong, "\n".join("%s: %r" % w for w in wrong[:30])


def test_marks_only_at_line_start(served):
    bad = [line for line in served.all_lines if line.positions not in ([], [0])]
    assert not bad, bad[:10]
    assert not rlmarks.foreign_marks(served.out + served.err, served.nonce)


def test_each_request_wrote_its_lines(served):
    texts = [line.text for line in served.all_lines]
    joined = "\n".join(texts)
    missing = []
    for r in served.requests:
        want = []
        if r.path in ("work", "work_sync"):
            want = ["start " + r.tag, "print " + r.tag, "end " + r.tag]
        elif r.path in ("fail", "crash"):
            want = ["fail " + r.tag, "RuntimeError: boom " + r.tag]
        elif r.path in ("pool", "thread"):
            want = ["%s %s" % (r.path, r.tag)]
        if r.path != "crash":
            want.append("?tag=" + r.tag)  # the access line
        missing += [(r.url, w) for w in want if w not in joined]
    assert "print " + served.requests[0].tag in texts or served.requests[0].path not in ("work", "work_sync")
    assert not missing, missing[:20]


def test_tracebacks_are_marked_whole(served):
    fail_spans = served.failing_spans()
    # Every line of a traceback (and its header) is marked with a failing
    # request's span.
    bad = [
        line
        for line in served.all_lines
        if is_traceback_line(line.text) and not (line.mark and line.mark[0] == "r" and line.mark[1] in fail_spans)
    ]
    assert not bad, "\n".join(repr(b) for b in bad[:30])
    # A traceback logged in one record (Flask, uvicorn, Django, plain_app)
    # is one write: its lines follow each other, all with the mark of the
    # request named in its last line.
    lines = served.err_lines + served.out_lines
    blocks = 0
    for i, line in enumerate(lines):
        if not line.text.startswith("Traceback (most recent call last)"):
            continue
        if i == 0 or not any(h in lines[i - 1].text for h in TRACEBACK_HEADERS[:3]):
            continue
        j = i
        while j < len(lines) and not lines[j].text.startswith("RuntimeError: boom "):
            j += 1
        assert j < len(lines), "traceback without its end:\n%r" % lines[i:]
        req = served.by_tag[lines[j].text.split()[-1]]
        block = lines[i - 1 : j + 1]
        assert all(b.mark == ("r", req.span) for b in block), "\n".join(repr(b) for b in block)
        blocks += 1
    fails = [r for r in served.requests if r.path == "fail"]
    assert blocks == len(fails), (blocks, len(fails))


def test_lines_outside_requests_are_unmarked(served):
    bad = [
        line
        for line in served.all_lines
        if line.mark is not None and not TAG.search(line.text) and not is_traceback_line(line.text)
    ]
    assert not bad, "\n".join(repr(b) for b in bad[:30])
    # The server's own lines at start-up (and the warm-up requests, which
    # have no traceparent) are there, unmarked.
    unmarked = [line for line in served.all_lines if line.mark is None]
    assert any("warmup" in line.text for line in unmarked)
    assert len(unmarked) >= 2


def test_derived_lines_only_from_pool_and_threads(served):
    derived = [line for line in served.all_lines if line.mark and line.mark[0] == "d"]
    assert derived, "no derived line at all"
    bad = [line for line in derived if not re.match(r"^(pool|thread) t[0-9a-f]{12}$", line.text)]
    assert not bad, bad[:10]
    # the first /pool request made the pool: the others' jobs ran on its
    # threads, each marked with its own request (checked line by line above),
    # never with the first one's.
    first = [r for r in served.requests if r.path == "pool"][0]
    assert sum(1 for line in derived if line.mark[1] == first.span) == 1


def test_hook_inert_without_nonce_on_a_server(tmp_path):
    """The hook's directory on PYTHONPATH but no nonce: no mark anywhere,
    even for a request with a traceparent."""
    port = free_port()
    server = Server("plain-no-nonce", [PY, "plain_app.py", str(port)], hooked_env(None), str(tmp_path))
    try:
        server.wait_ready(port)
        r = Request("work", ms=5)
        r.send(port)
        f = Request("fail")
        f.send(port)
        assert (r.status, f.status) == (200, 500)
        server.wait_output(lambda data: ("?tag=" + f.tag).encode() in data)
    finally:
        server.stop()
    out, err = server.output()
    assert b"\x1b_rl1;" not in out + err
    assert ("print %s\n" % r.tag).encode() in out
    assert ("RuntimeError: boom %s\n" % f.tag).encode() in err
