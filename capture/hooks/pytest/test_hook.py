"""The hook itself, in short-lived interpreters: inertness without a nonce,
byte-exact output, the stream wrapper's manners, threads, executors,
asyncio, fork, and chaining to the user's sitecustomize."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import rlmarks
from conftest import CHILD_PY, HOOK_DIR, base_env, free_port, get, hooked_env, run_python

sys.path.insert(0, HOOK_DIR)
import _replaylink_hook as hook  # noqa: E402  (importing it installs nothing)

SPAN = "b7ad6b7169203331"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-%s-01" % SPAN


# --- parsing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, span",
    [
        (TRACEPARENT, SPAN),
        (TRACEPARENT.encode(), SPAN),
        ("  " + TRACEPARENT + " ", SPAN),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", SPAN),  # a later version may add fields
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", None),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", None),  # upper case
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", None),
        (TRACEPARENT + "," + TRACEPARENT, None),  # two headers joined
        ("", None),
        (None, None),
        (b"\xff\xfe", None),
        (42, None),
    ],
)
def test_span_of(value, span):
    assert hook.span_of(value) == span


def test_read_nonce(tmp_path):
    good = "0123456789abcdef"
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE": good}) == good
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE": " %s\n" % good}) == good
    for bad in ("0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "xyz", "0123456789abcdeg"):
        assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE": bad}) is None, bad
    assert hook.read_nonce({}) is None
    f = tmp_path / "nonce"
    f.write_text(good + "\n")
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE_FILE": str(f)}) == good
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE_FILE": str(tmp_path / "missing")}) is None
    # The variable wins over the file.
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE": "fedcba9876543210", "REPLAYLINK_HOOK_NONCE_FILE": str(f)}) == (
        "fedcba9876543210"
    )
    (tmp_path / "bad").write_bytes(b"\xff" * 16)
    assert hook.read_nonce({"REPLAYLINK_HOOK_NONCE_FILE": str(tmp_path / "bad")}) is None


# --- byte-exact output ------------------------------------------------------


def _deterministic(env):
    rc, out, err = run_python(["deterministic.py", TRACEPARENT], env)
    assert rc == 0, err.decode(errors="replace")
    return out, err


def test_stripping_gives_the_bytes_the_app_wrote(nonce, tmp_path):
    plain_out, plain_err = _deterministic(base_env())
    out, err = _deterministic(hooked_env(nonce))
    assert len(plain_out) > 70000 and b"\x1b_rl1;" + nonce.encode() not in plain_out
    assert out != plain_out  # marked
    assert rlmarks.strip(out, nonce) == plain_out
    assert rlmarks.strip(err, nonce) == plain_err
    # The same with the nonce in a file.
    f = tmp_path / "nonce"
    f.write_text(nonce + "\n")
    env = hooked_env(None)
    env["REPLAYLINK_HOOK_NONCE_FILE"] = str(f)
    out2, err2 = _deterministic(env)
    assert (out2, err2) == (out, err)


def test_deterministic_lines_marked_as_they_say(nonce):
    out, err = _deterministic(hooked_env(nonce))
    want = {"R": ("r", SPAN), "": ("r", SPAN), "D": ("d", SPAN), "O": None, "B": None}
    checked = 0
    for line in rlmarks.lines(out, nonce) + rlmarks.lines(err, nonce):
        text = line.text
        if text.startswith(hook._MARK_START):  # starts with the foreign mark
            text = text[rlmarks.MARK_LEN :]
        assert line.positions in ([], [0]), line
        assert line.mark == want[text[:1]], line
        checked += 1
    assert checked > 25
    # The foreign mark is text: not ours, and kept.
    assert rlmarks.foreign_marks(out, nonce) == [b"\x1b_rl1;fedcba9876543210;r0123456789abcdef\x1b\\"] * 2
    # The last line has no newline, and stays so.
    assert out.endswith(b"O last line without newline")


# --- inert without a nonce --------------------------------------------------

INTROSPECT = textwrap.dedent(
    """
    import builtins, io, sys, threading, http.server, concurrent.futures.thread as cft
    print(type(sys.stdout).__name__, type(sys.stderr).__name__, sys.stdout is sys.__stdout__)
    print(type(builtins.print).__name__)
    print([type(f).__name__ for f in sys.meta_path if "Replay" in type(f).__name__ or "PostImport" in type(f).__name__])
    print(getattr(threading.Thread.start, "_rl_patched", False), getattr(cft.ThreadPoolExecutor.submit, "_rl_patched", False))
    print(getattr(http.server.BaseHTTPRequestHandler.parse_request, "_rl_patched", False))
    print(type(sys.modules["http.server"].__loader__).__name__, "exec_module" in vars(sys.modules["http.server"].__loader__))
    """
)


@pytest.mark.parametrize("value", [None, "", "0123456789ABCDEF", "0123456789abcde", "not-a-nonce-at-all"])
def test_inert_without_a_valid_nonce(value):
    env = hooked_env(None)
    if value is not None:
        env["REPLAYLINK_HOOK_NONCE"] = value
    out, err = _deterministic(env)
    assert (out, err) == _deterministic(base_env())
    assert b"\x1b_rl1;" not in (out + err).replace(b"\x1b_rl1;fedcba9876543210", b"")
    rc, out, err = run_python(["-c", INTROSPECT], env)
    assert rc == 0, err
    assert out.decode().splitlines() == [
        "TextIOWrapper TextIOWrapper True",
        "builtin_function_or_method",
        "[]",
        "False False",
        "False",
        "SourceFileLoader False",
    ]
    assert err == b""


def test_installed_with_a_nonce(nonce):
    rc, out, err = run_python(["-c", INTROSPECT], hooked_env(nonce))
    assert rc == 0, err
    assert out.decode().splitlines() == [
        "MarkingStream MarkingStream True",
        "function",
        "['_PostImportFinder']",
        "True True",
        "True",
        # the loader keeps its class, and loses the hook's attribute once done
        "SourceFileLoader False",
    ]
    assert err == b""


# --- programs that never serve ------------------------------------------------


def test_python_c_and_exit_codes(nonce):
    env = hooked_env(nonce)
    assert run_python(["-c", "print('hi')"], env) == (0, b"hi\n", b"")
    assert run_python(["-c", "import sys; sys.exit(3)"], env)[0] == 3
    rc, out, err = run_python(["-c", "raise SystemExit('bye')"], env)
    assert (rc, out, err) == (1, b"", b"bye\n")
    rc, out, err = run_python(["-c", "1/0"], env)
    assert rc == 1 and err.endswith(b"ZeroDivisionError: division by zero\n") and b"\x1b" not in err
    rc, out, err = run_python(["-"], env, input=b"print('from stdin')\n")
    assert (rc, out) == (0, b"from stdin\n")


def test_a_script_that_never_serves_is_unchanged(nonce):
    script = textwrap.dedent(
        """
        import logging, sys, threading, http.server, socketserver, wsgiref.simple_server
        from concurrent.futures import ThreadPoolExecutor
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        logging.info("log line")
        with ThreadPoolExecutor(2) as ex:
            print(list(ex.map(str, range(5))))
        t = threading.Thread(target=print, args=("thread",)); t.start(); t.join()
        print("to stderr", file=sys.stderr, flush=True)
        sys.stdout.write("no newline")
        """
    )
    assert run_python(["-c", script], hooked_env(nonce)) == run_python(["-c", script], base_env())


def test_python_m_http_server_still_serves(nonce, tmp_path):
    """`python -m http.server` runs as __main__, a copy of http.server the
    hook does not patch: it must serve as ever (its lines are unmarked)."""
    (tmp_path / "hello.txt").write_text("hello\n")
    port = free_port()
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [CHILD_PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=str(tmp_path),
            env=hooked_env(nonce),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            status = None
            while time.monotonic() < deadline:
                try:
                    status, body = get(port, "/hello.txt", headers={"traceparent": TRACEPARENT}, timeout=2)
                except OSError:
                    status = None
                if status is not None:
                    break
                time.sleep(0.1)
            assert (status, body) == (200, b"hello\n")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    assert b"GET /hello.txt" in out_path.read_bytes()


# --- the stream wrapper's manners ---------------------------------------------

MANNERS = textwrap.dedent(
    """
    import contextlib, io, pickle, sys, _replaylink_hook as h
    h.current.set(("r", "%s"))
    out = sys.stdout
    # attributes pass through
    assert out.encoding == "utf-8" and out.errors in ("strict", "backslashreplace")
    assert out.fileno() == 1 and out.isatty() is False and out.writable()
    assert out.buffer is sys.__stdout__.buffer and out.name == "<stdout>"
    assert isinstance(out, io.TextIOBase) and not out.closed
    out.reconfigure(line_buffering=True); assert out.line_buffering
    out.custom_attribute = 7; assert out.custom_attribute == 7; del out.custom_attribute
    # write's answers are the stream's
    assert out.write("R counted\\n") == 10
    assert out.write("") == 0
    try:
        out.write(b"bytes")
    except TypeError:
        pass
    else:
        raise AssertionError("bytes accepted")
    # print: the builtin's behaviour, one write
    try:
        print("x", sep=1)
    except TypeError:
        pass
    else:
        raise AssertionError("sep=1 accepted")
    assert pickle.loads(pickle.dumps(print)) is print and print.__name__ == "print"
    print("R", "a", 1, sep="|", end="|\\n")
    print("R to stderr, flushed", file=sys.stderr, flush=True)
    # the app's own streams are its own: no marks in them
    buf = io.StringIO()
    sys.stdout = buf
    print("captured")
    sys.stdout = sys.__stdout__
    with contextlib.redirect_stdout(io.StringIO()) as buf2:
        print("captured too")
    print("R " + repr(buf.getvalue() + buf2.getvalue()))
    # binary writes go as they are
    sys.stdout.flush(); sys.stdout.buffer.write(b"B binary\\n"); sys.stdout.buffer.flush()
    with open("/dev/null", "w") as f:
        print("to a file", file=f)
    sys.stdout.writelines(["R w1\\n", "R w2\\n"])
    # libraries that take the streams' file descriptors
    import faulthandler, subprocess
    faulthandler.enable(); faulthandler.disable()
    sys.stdout.flush()
    subprocess.run(["echo", "B from a child process"], stdout=sys.stdout, check=True)
    """
    % SPAN
)


def test_stream_wrapper_manners(nonce):
    rc, out, err = run_python(["-c", MANNERS], hooked_env(nonce))
    assert rc == 0, err.decode(errors="replace")
    m = rlmarks.mark(nonce, "r", SPAN)
    assert out == (
        m + b"R counted\n" + m + b"R|a|1|\n" + m + b"R 'captured\\ncaptured too\\n'\n" + b"B binary\n" + m + b"R w1\n" + m + b"R w2\n" + b"B from a child process\n"
    )
    assert err == m + b"R to stderr, flushed\n"


# --- threads, executors, asyncio, fork ---------------------------------------

THREADS = textwrap.dedent(
    """
    import sys, threading, time, _replaylink_hook as h
    from concurrent.futures import ThreadPoolExecutor
    A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"

    def run(fn, *args):
        t = threading.Thread(target=fn, args=args); t.start(); t.join()

    # A pool made while serving A: both its threads start in submit, here.
    token = h.current.set(("r", A))
    pool = ThreadPoolExecutor(max_workers=2)
    for f in [pool.submit(time.sleep, 0.05) for _ in range(2)]:
        f.result()
    assert len(pool._threads) == 2
    pool.submit(print, "job in A").result()
    run(print, "thread in A")
    run(run, print, "thread of a thread in A")
    h.current.reset(token)
    # Reused while serving B, and outside any request.
    token = h.current.set(("r", B))
    pool.submit(print, "job in B").result()
    print("B itself")
    h.current.reset(token)
    pool.submit(print, "job outside").result()
    for f in [pool.submit(print, "job outside %d" % i) for i in range(4)]:
        f.result()
    run(print, "thread outside")
    pool.shutdown()
    # A Thread subclass that overrides run.
    class T(threading.Thread):
        def run(self):
            print("subclass run in B")
    token = h.current.set(("r", B))
    t = T(); t.start(); t.join()
    assert "run" not in vars(t)  # the hook's wrapper is gone
    h.current.reset(token)
    """
)


def test_threads_and_pools(nonce):
    rc, out, err = run_python(["-c", THREADS], hooked_env(nonce))
    assert rc == 0, err.decode(errors="replace")
    got = [(line.mark, line.text) for line in rlmarks.lines(out, nonce)]
    got[6:10] = sorted(got[6:10])  # run by either thread of the pool
    A, B = "a" * 16, "b" * 16
    assert got == [
        (("d", A), "job in A"),
        (("d", A), "thread in A"),
        (("d", A), "thread of a thread in A"),
        (("d", B), "job in B"),
        (("r", B), "B itself"),
        (None, "job outside"),
        (None, "job outside 0"),
        (None, "job outside 1"),
        (None, "job outside 2"),
        (None, "job outside 3"),
        (None, "thread outside"),
        (("d", B), "subclass run in B"),
    ]


ASYNCIO = textwrap.dedent(
    """
    import asyncio, _replaylink_hook as h
    A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"

    async def serve(span, delay):
        h.current.set(("r", span))
        await asyncio.sleep(delay)
        print("task", span[0])
        await asyncio.create_task(child(span))
        await asyncio.get_running_loop().run_in_executor(None, print, "executor", span[0])

    async def child(span):
        await asyncio.sleep(0.01)
        print("child", span[0])

    async def main():
        await asyncio.gather(serve(A, 0.02), serve(B, 0.01))
        print("outside")

    asyncio.run(main())
    """
)


def test_asyncio_tasks_inherit_and_executors_derive(nonce):
    rc, out, err = run_python(["-c", ASYNCIO], hooked_env(nonce))
    assert rc == 0, err.decode(errors="replace")
    got = sorted((line.text, line.mark) for line in rlmarks.lines(out, nonce))
    A, B = "a" * 16, "b" * 16
    assert got == sorted(
        [
            ("task a", ("r", A)),
            ("child a", ("r", A)),
            ("executor a", ("d", A)),
            ("task b", ("r", B)),
            ("child b", ("r", B)),
            ("executor b", ("d", B)),
            ("outside", None),
        ]
    )


FORK = textwrap.dedent(
    """
    import os, sys, threading, time, _replaylink_hook as h
    h.current.set(("r", "aaaaaaaaaaaaaaaa"))
    # Another thread holds the stream's lock while the process forks: the
    # child must still be able to write.
    held, release = threading.Event(), threading.Event()
    def hold():
        with sys.stdout._rl_lock:
            held.set(); release.wait(5)
    t = threading.Thread(target=hold); t.start(); held.wait(5)
    pid = os.fork()
    if pid == 0:
        print("child")
        sys.stdout.flush()
        os._exit(0)
    release.set(); t.join()
    _, status = os.waitpid(pid, 0)
    print("parent", status)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_fork_while_a_thread_holds_the_stream(nonce):
    rc, out, err = run_python(["-c", FORK], hooked_env(nonce), timeout=20)
    assert rc == 0, err.decode(errors="replace")
    # The child goes on with the request, as derived work.
    r, d = rlmarks.mark(nonce, "r", "a" * 16), rlmarks.mark(nonce, "d", "a" * 16)
    assert sorted(out.split(b"\n")) == sorted([d + b"child", r + b"parent 0", b""])


PROCESSES = textwrap.dedent(
    """
    import multiprocessing, sys, _replaylink_hook as h
    from concurrent.futures import ProcessPoolExecutor

    def job(text):
        print(text)
        sys.stdout.flush()

    if __name__ == "__main__":
        fork = multiprocessing.get_context("fork")
        A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
        token = h.current.set(("r", A))
        pool = ProcessPoolExecutor(max_workers=2, mp_context=fork)
        pool.submit(job, "process pool job in A").result()
        p = fork.Process(target=job, args=("forked process in A",)); p.start(); p.join()
        h.current.reset(token)
        token = h.current.set(("r", B))
        pool.submit(job, "process pool job in B").result()
        h.current.reset(token)
        pool.submit(job, "process pool job outside").result()
        pool.shutdown()
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_process_pools_and_forked_processes(nonce, tmp_path):
    script = tmp_path / "processes.py"
    script.write_text(PROCESSES)
    rc, out, err = run_python([str(script)], hooked_env(nonce), timeout=30)
    assert rc == 0, err.decode(errors="replace")
    got = [(line.mark, line.text) for line in rlmarks.lines(out, nonce)]
    # A process pool's workers keep no request (its jobs stay unmarked); a
    # process forked while serving A is A's derived work.
    assert got == [
        (None, "process pool job in A"),
        (("d", "a" * 16), "forked process in A"),
        (None, "process pool job in B"),
        (None, "process pool job outside"),
    ]


# --- chaining to the user's sitecustomize -----------------------------------


def _user_site(tmp_path, body):
    d = tmp_path / "user_site"
    d.mkdir()
    (d / "sitecustomize.py").write_text(textwrap.dedent(body))
    return str(d)


CHAIN_PROBE = textwrap.dedent(
    """
    import sys, sitecustomize
    print(sitecustomize.__file__.endswith("user_site/sitecustomize.py"), sys.user_site_runs, type(sys.stdout).__name__)
    """
)


@pytest.mark.parametrize("with_nonce", [True, False])
def test_user_sitecustomize_still_runs(tmp_path, nonce, with_nonce):
    user = _user_site(
        tmp_path,
        """
        import sys
        sys.user_site_runs = getattr(sys, "user_site_runs", 0) + 1
        sys.user_site_saw = type(sys.stdout).__name__
        """,
    )
    env = hooked_env(nonce if with_nonce else None, extra_path=user)
    rc, out, err = run_python(["-c", CHAIN_PROBE + "print(sys.user_site_saw)"], env)
    assert rc == 0, err.decode(errors="replace")
    stream = "MarkingStream" if with_nonce else "TextIOWrapper"
    # It ran once, after the hook (it sees the marking stream), and is the
    # module called sitecustomize.
    assert out.decode().splitlines() == ["True 1 %s" % stream, stream]
    assert err == b""


def test_user_sitecustomize_errors_reported_as_without_the_hook(tmp_path, nonce):
    user = _user_site(tmp_path, "raise ValueError('broken user sitecustomize')\n")
    env = base_env()
    env["PYTHONPATH"] = user
    want = run_python(["-c", "print('still runs')"], env)
    got = run_python(["-c", "print('still runs')"], hooked_env(nonce, extra_path=user))
    assert got == want
    assert b"Error in sitecustomize" in want[2] and want[1] == b"still runs\n"


def test_no_user_sitecustomize(nonce):
    rc, out, err = run_python(["-c", "import sitecustomize; print(sitecustomize.__file__)"], hooked_env(nonce))
    assert rc == 0 and out.decode().strip() == os.path.join(HOOK_DIR, "sitecustomize.py")
