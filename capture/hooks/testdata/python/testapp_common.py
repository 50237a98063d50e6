"""What every test app does, so that they all behave alike (see README.md).

The apps call these from their request handlers; the sleeps are the only
thing an async app does differently (asgi_app.py awaits them instead).
"""

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("app")


def setup_logging():
    # INFO and up, to stderr, one line per record (a traceback adds lines).
    # TESTAPP_LOGGING=framework leaves logging as the framework sets it up
    # (Flask then logs its tracebacks to wsgi.errors, which is gunicorn's
    # error log file when it has one).
    if os.environ.get("TESTAPP_LOGGING") == "framework":
        log.setLevel(logging.WARNING)
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def port_from_argv(default=8000):
    """The port: first argument, else $PORT, else default."""
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        return int(sys.argv[1])
    return int(os.environ.get("PORT", default))


def work_start(tag):
    log.info("start %s", tag)
    print("print %s" % tag)


def work_end(tag):
    log.warning("end %s", tag)


def fail(tag):
    log.info("fail %s", tag)
    raise RuntimeError("boom %s" % tag)


# A module-level pool made on first use: the first /pool request creates it
# (and its threads), later requests reuse it.
_pool = None
_pool_lock = threading.Lock()


def pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="app-pool")
        return _pool


def _pool_job(tag):
    print("pool %s" % tag)
    return tag


def pool_work(tag):
    """Runs the job in the pool and waits for it."""
    return pool().submit(_pool_job, tag).result(timeout=10)


def pool_submit(tag):
    """Submits the job; the caller waits for the future."""
    return pool().submit(_pool_job, tag)


def thread_work(tag):
    t = threading.Thread(target=print, args=("thread %s" % tag,), name="app-thread")
    t.start()
    t.join(10)
