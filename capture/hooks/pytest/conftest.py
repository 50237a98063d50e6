"""Fixtures of the Python hook's tests: the hooked environment, free
loopback ports, and test servers started as process groups and always
stopped."""

import os
import signal
import socket
import subprocess
import sys
import time
import http.client

import pytest

import rlmarks

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_DIR = os.path.normpath(os.path.join(HERE, "..", "python"))
APPS_DIR = os.path.normpath(os.path.join(HERE, "..", "testdata", "python"))
PY = sys.executable
# The interpreter of test_hook.py's programs (stdlib only): another Python
# version can be tried with RL_HOOK_TEST_PYTHON=/path/to/python3.X. The
# servers (test_servers.py) run with this one, where their packages are.
CHILD_PY = os.environ.get("RL_HOOK_TEST_PYTHON") or sys.executable


def base_env():
    """The environment without any hook (nor a nonce from outside)."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "REPLAYLINK_HOOK_NONCE", "REPLAYLINK_HOOK_NONCE_FILE", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def hooked_env(nonce, extra_path=None):
    env = base_env()
    path = [HOOK_DIR] + ([extra_path] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(path)
    if nonce is not None:
        env["REPLAYLINK_HOOK_NONCE"] = nonce
    return env


@pytest.fixture
def nonce():
    return rlmarks.new_nonce()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_python(args, env, timeout=20, cwd=None, input=None):
    """Runs python with args; returns (returncode, stdout bytes, stderr bytes)."""
    p = subprocess.run(
        [CHILD_PY] + list(args), env=env, cwd=cwd or APPS_DIR, input=input, capture_output=True, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


def get(port, path, headers=None, timeout=15):
    """GET path on 127.0.0.1:port on a new connection: (status, body), or
    (None, error text) if the server closed without an answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (http.client.RemoteDisconnected, ConnectionError) as e:
        return None, repr(e)
    finally:
        conn.close()


class Server(object):
    """A test server: a process group writing stdout and stderr to files."""

    def __init__(self, name, argv, env, tmpdir, cwd=APPS_DIR):
        self.name = name
        self.port = None
        self.out_path = os.path.join(tmpdir, name + ".out")
        self.err_path = os.path.join(tmpdir, name + ".err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self, port, timeout=30):
        """Waits until GET /work answers (requests with no traceparent: their
        lines are outside any request and must stay unmarked)."""
        self.port = port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.output()))
            try:
                status, _ = get(port, "/work?tag=warmup&ms=0", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("%s not ready in %ss:\n%s" % (self.name, timeout, self.output()))

    def output(self):
        with open(self.out_path, "rb") as f:
            out = f.read()
        with open(self.err_path, "rb") as f:
            err = f.read()
        return out, err

    def wait_output(self, predicate, timeout=15):
        """Waits (bounded) until predicate(stdout + stderr) holds: servers
        write some lines (access lines) after the answer is sent."""
        deadline = time.monotonic() + timeout
        while True:
            out, err = self.output()
            if predicate(out + b"\n" + err) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (workers, a reloader's child).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()
        self._err.close()
