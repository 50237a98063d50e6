"""replaylink's runtime hook for Python backends.

It marks every line a backend writes to sys.stdout / sys.stderr while it is
serving a request, so that replaylink can attribute the line to that request
exactly, whatever the concurrency. The protocol is described in
capture/hooks/doc.go; in short a marked line starts with

    ESC _ rl1;NONCE;KIND SPAN ESC \\        (42 characters)

written in the same write call as the line's first characters, where NONCE
comes from REPLAYLINK_HOOK_NONCE (or the file named by
REPLAYLINK_HOOK_NONCE_FILE), KIND is 'r' for the thread or task serving the
request and 'd' for a thread or executor job it started, and SPAN is the
parent id of the request's traceparent header.

How:
- a ContextVar holds (kind, span) for the thread or asyncio task serving a
  request (None otherwise); asyncio tasks inherit it on their own;
- sys.stdout and sys.stderr are replaced by thin wrappers that put the mark
  at the start of each line written while the ContextVar is set;
- servers are patched, when they are imported, to set the ContextVar from the
  request's traceparent for as long as they serve it (including their access
  line and the traceback of an unhandled exception); a few frameworks are
  patched too, as a fallback for servers this module does not know;
- threading.Thread.start and ThreadPoolExecutor.submit carry the request into
  the new thread or job as kind 'd'.

Rules this module keeps: standard library only; it never raises into the
program and prints nothing; without a valid nonce it changes nothing at all;
it runs on Python 3.8 to 3.14, so no newer syntax.
"""

import builtins
import contextvars
import os
import re
import sys
import _thread

NONCE_ENV = "REPLAYLINK_HOOK_NONCE"
NONCE_FILE_ENV = "REPLAYLINK_HOOK_NONCE_FILE"

_HEX = "0123456789abcdef"
_MARK_START = "\x1b_rl1;"
_MARK_END = "\x1b\\"

# The request of the current thread or task: ("r" or "d", span) or None.
current = contextvars.ContextVar("replaylink_request", default=None)

_installed = False
_nonce = None
# _files_read: the nonce came from REPLAYLINK_HOOK_NONCE_FILE, that is, a
# sidecar reads this backend's log files (see _patch_logging_files).
_files_read = False


def _is_lower_hex(s, n):
    return len(s) == n and not s.strip(_HEX)


def read_nonce(environ=None):
    """The nonce the hook runs with, or None (then the hook does nothing).

    REPLAYLINK_HOOK_NONCE wins when it is set; otherwise the file named by
    REPLAYLINK_HOOK_NONCE_FILE is read. Surrounding white space is allowed,
    as in the Go side's ParseNonce.
    """
    env = os.environ if environ is None else environ
    value = env.get(NONCE_ENV)
    if not value:
        path = env.get(NONCE_FILE_ENV)
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                value = f.read(256).decode("ascii")
        except (OSError, ValueError):
            return None
    value = value.strip()
    return value if _is_lower_hex(value, 16) else None


_ZERO16 = "0" * 16
_ZERO32 = "0" * 32
# The form tracers send: version 00, exactly 55 characters.
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def span_of(traceparent):
    """The parent id of a W3C traceparent value, or None if it is not valid.

    Accepts str or bytes (ASGI headers are bytes). Only the forms the spec
    accepts count: version 00 has exactly four fields; a later version may
    have more; ids of all zeros are invalid.
    """
    # Fast path, for every request: the form tracers send (one regular
    # expression costs less than the general path's splitting and checking
    # field by field). Anything else takes the general path, which decides.
    if type(traceparent) is str and len(traceparent) == 55:
        m = _TRACEPARENT_00.fullmatch(traceparent)
        if m is not None:
            trace_id, span = m.groups()
            if span == _ZERO16 or trace_id == _ZERO32:
                return None
            return span
    if traceparent is None:
        return None
    if isinstance(traceparent, (bytes, bytearray)):
        try:
            traceparent = traceparent.decode("ascii")
        except ValueError:
            return None
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[0], parts[1], parts[2], parts[3]
    if not _is_lower_hex(version, 2) or version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if not _is_lower_hex(trace_id, 32) or trace_id == _ZERO32:
        return None
    if not _is_lower_hex(parent_id, 16) or parent_id == _ZERO16:
        return None
    if not _is_lower_hex(flags, 2):
        return None
    return parent_id


def _request(traceparent):
    span = span_of(traceparent)
    return None if span is None else ("r", span)


def _header_in_pairs(pairs, name):
    """The first value of header name (lower case) in (name, value) pairs,
    whatever the case and type (str or bytes) of the names."""
    n = len(name)
    for pair in pairs:
        try:
            key = pair[0]
            if len(key) != n:
                continue  # the cheap test first: most headers end here
            value = pair[1]
        except (TypeError, IndexError, KeyError):
            continue
        if isinstance(key, str):
            if key.lower() == name:
                return value
        elif isinstance(key, (bytes, bytearray)) and key.lower() == name.encode("ascii"):
            return value
    return None


def _request_of_asgi_scope(scope):
    try:
        if scope is None or scope.get("type") not in ("http", "websocket"):
            return None
        return _request(_header_in_pairs(scope.get("headers") or (), "traceparent"))
    except Exception:
        return None


def _restore(token, saved):
    # reset() refuses a token made in another Context; the value before is
    # then set back by hand.
    try:
        current.reset(token)
    except (ValueError, RuntimeError):
        current.set(saved)


# ---------------------------------------------------------------------------
# The marking streams


class MarkingStream(object):
    """Wraps a text stream (sys.stdout or sys.stderr): puts the mark of the
    current request at the start of each line written while there is one,
    and passes everything else through to the stream.

    "Start of a line" is the stream's own: the first character after a
    newline written through this wrapper, or its first character. A lock
    keeps that state in the order the text reaches the stream; it is
    reentrant because a signal handler or a finaliser may print while a
    write is under way in the same thread.
    """

    # write and flush are the instance's own functions (closures made by
    # _rl_make_write), not methods: a class with __getattr__ makes every
    # attribute of its instances slow to look up, and write() would
    # otherwise look up several of them on each call, on top of binding
    # itself as a method.
    __slots__ = ("_rl_stream", "_rl_lock", "_rl_state", "_rl_prefix", "write", "flush")

    def __init__(self, stream, nonce):
        object.__setattr__(self, "_rl_stream", stream)
        # [at line start, last request, its mark, the lock]. The mark of
        # the last request is kept: the lines of one request mostly come one
        # after another. The lock is _rl_lock, where write() finds it.
        lock = _thread.RLock()
        object.__setattr__(self, "_rl_lock", lock)
        object.__setattr__(self, "_rl_state", [True, None, None, lock])
        object.__setattr__(self, "_rl_prefix", _MARK_START + nonce + ";")

        def flush():
            return stream.flush()

        object.__setattr__(self, "flush", flush)
        object.__setattr__(self, "write", self._rl_make_write())

    def _rl_make_write(self, _get=current.get, _str=str, _len=len):
        stream = self._rl_stream
        state = self._rl_state
        prefix = self._rl_prefix

        def write(s):
            if type(s) is not _str and not isinstance(s, _str) or not s:
                # Not text (the stream raises as it would have), or
                # nothing: no line starts.
                return stream.write(s)
            request = _get()
            lock = state[3]
            lock.acquire()  # cheaper than "with" on the hot path
            try:
                if request is None:
                    # Fast path: no request, the text as it is; only the
                    # line state is kept.
                    n = stream.write(s)
                else:
                    if request is state[1]:
                        mark = state[2]
                    else:
                        mark = prefix + request[0] + request[1] + _MARK_END
                        state[1] = request
                        state[2] = mark
                    if "\n" in s[:-1]:
                        # Lines start inside the text too: after each
                        # newline but a final one (the next write starts
                        # that line).
                        text = s[:-1].replace("\n", "\n" + mark) + s[-1]
                    else:
                        text = s
                    if state[0]:
                        text = mark + text
                    stream.write(text)
                    n = _len(s)  # what the caller wrote, not what the stream got
                state[0] = s[-1] == "\n"
            finally:
                lock.release()
            return n

        return write

    def writelines(self, lines):
        # One write, so that the lines are marked (the stream's own
        # writelines would bypass this wrapper).
        self.write("".join(lines))

    def __getattr__(self, name):
        if name.startswith("_rl_"):
            raise AttributeError(name)
        return getattr(self._rl_stream, name)

    def __setattr__(self, name, value):
        if name.startswith("_rl_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._rl_stream, name, value)

    def __delattr__(self, name):
        if name.startswith("_rl_"):
            object.__delattr__(self, name)
        else:
            delattr(self._rl_stream, name)

    def __repr__(self):
        return repr(self._rl_stream)

    def __enter__(self):
        self._rl_stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self._rl_stream.__exit__(*exc)

    def _rl_after_fork(self):
        # The lock may have been held by a thread of the parent that does
        # not exist in the child.
        lock = _thread.RLock()
        object.__setattr__(self, "_rl_lock", lock)
        self._rl_state[3] = lock


def _make_print(original):
    """print, for text going to a MarkingStream, as one write.

    The builtin print writes each argument, separator and end separately;
    another thread's line can then land between a line's text and its
    newline (it does, under load, with unbuffered output). One write keeps a
    printed line whole, so it gets its own mark. Anything unusual (another
    kind of file, a separator that is not a str) goes to the builtin.
    """

    def print(*args, sep=None, end=None, file=None, flush=False):  # noqa: A001
        target = sys.stdout if file is None else file
        if (
            type(target) is not MarkingStream
            or (sep is not None and type(sep) is not str)
            or (end is not None and type(end) is not str)
        ):
            return original(*args, sep=sep, end=end, file=file, flush=flush)
        if len(args) == 1 and type(args[0]) is str:
            text = args[0]  # the common case, print("text")
        else:
            text = (" " if sep is None else sep).join([a if type(a) is str else str(a) for a in args])
        target.write(text + ("\n" if end is None else end))
        if flush:
            target.flush()

    print.__doc__ = original.__doc__
    # pickle and copy look a function up by module and name: this one must
    # be found as builtins.print.
    print.__module__ = "builtins"
    print.__qualname__ = "print"
    return print


def _wrap_streams(nonce):
    wrapped = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if stream is None or type(stream) is MarkingStream or not hasattr(stream, "write"):
            continue
        marking = MarkingStream(stream, nonce)
        setattr(sys, name, marking)
        # sys.__stdout__ too when it is the same stream, so that a program
        # that restores sys.stdout = sys.__stdout__ stays marked.
        if getattr(sys, "__%s__" % name, None) is stream:
            setattr(sys, "__%s__" % name, marking)
        wrapped.append(marking)
    if wrapped:
        try:
            # isinstance(sys.stdout, io.TextIOBase) stays true. Registered,
            # not inherited: IOBase's methods (close() on __del__, a fileno
            # that raises) would shadow the stream's own.
            import io

            io.TextIOBase.register(MarkingStream)
        except Exception:
            pass
        builtins.print = _make_print(builtins.print)
        if hasattr(os, "register_at_fork"):

            def after_fork():
                for m in wrapped:
                    m._rl_after_fork()
                # A process forked while serving a request (multiprocessing,
                # a process pool) goes on with the forking thread's context:
                # its output is derived, like a thread's.
                request = current.get()
                if request is not None and request[0] == "r":
                    current.set(("d", request[1]))

            os.register_at_fork(after_in_child=after_fork)


# ---------------------------------------------------------------------------
# Patching helpers


def _patched(func):
    return getattr(func, "_rl_patched", False)


def _mark_patched(wrapper, original):
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attr, getattr(original, attr))
        except (AttributeError, TypeError):
            pass
    try:
        wrapper.__dict__.update(getattr(original, "__dict__", {}))
    except (AttributeError, TypeError):
        pass
    wrapper.__wrapped__ = original
    wrapper._rl_patched = True
    return wrapper


def _patch_method(cls, name, make_wrapper):
    """Replaces cls.name (its own, not an inherited one) with
    make_wrapper(original), once."""
    original = cls.__dict__.get(name)
    if original is None or not callable(original) or _patched(original):
        return
    setattr(cls, name, _mark_patched(make_wrapper(original), original))


def _is_coroutine_function(func):
    return bool(getattr(getattr(func, "__code__", None), "co_flags", 0) & 0x80)


def _serving(request_of):
    """A wrapper maker for a server's method that serves one request:
    request_of(self, args, kwargs) gives the request (or None, which clears
    any request the thread had) for the whole call."""

    def make(original):
        if _is_coroutine_function(original):

            async def serve_async(self, *args, **kwargs):
                saved = current.get()
                try:
                    request = request_of(self, args, kwargs)
                except Exception:
                    request = None
                token = current.set(request)
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    _restore(token, saved)

            return serve_async

        def serve(self, *args, **kwargs):
            saved = current.get()
            try:
                request = request_of(self, args, kwargs)
            except Exception:
                request = None
            token = current.set(request)
            try:
                return original(self, *args, **kwargs)
            finally:
                # _restore, inline: this runs for every request
                try:
                    current.reset(token)
                except (ValueError, RuntimeError):
                    current.set(saved)

        return serve

    return make


# Framework fallbacks: a framework's entry point sets the request only when
# no server hook did (a server this module does not know). Their wrappers
# keep the exact signature of the entry point: servers probe apps by calling
# them (uvicorn calls app() to tell a factory from an app, and expects a
# TypeError from an app), so the same calls must fail the same way.


def _enter_fallback(request):
    """Sets request unless a server hook already set one; returns what
    _leave_fallback needs."""
    if request is None or current.get() is not None:
        return None
    return current.set(request)


def _leave_fallback(token):
    if token is not None:
        _restore(token, None)


def _wsgi_fallback(original):
    def wsgi_entry(self, environ, start_response):
        if current.get() is not None:
            # A server hook set the request (the usual case): the header
            # need not even be parsed.
            return original(self, environ, start_response)
        token = None
        try:
            token = _enter_fallback(_request(environ.get("HTTP_TRACEPARENT")))
        except Exception:
            pass
        try:
            return original(self, environ, start_response)
        finally:
            _leave_fallback(token)

    return wsgi_entry


def _asgi_fallback(original):
    async def asgi_entry(self, scope, receive, send):
        if current.get() is not None:
            return await original(self, scope, receive, send)  # as in wsgi_entry
        token = None
        try:
            token = _enter_fallback(_request_of_asgi_scope(scope))
        except Exception:
            pass
        try:
            return await original(self, scope, receive, send)
        finally:
            _leave_fallback(token)

    return asgi_entry


# ---------------------------------------------------------------------------
# Threads and executors


def _patch_threading(mod):
    Thread = mod.Thread

    def make_start(original):
        def start(self):
            request = current.get()
            if request is None:
                return original(self)
            # A new thread starts with an empty context (before 3.14, and
            # by default after): it gets the starter's request as derived.
            derived = ("d", request[1])
            run = self.run

            def run_in_request():
                current.set(derived)
                try:
                    run()
                finally:
                    # Drop the reference cycle thread -> run_in_request.
                    self.__dict__.pop("run", None)

            self.run = run_in_request
            try:
                return original(self)
            except BaseException:
                self.__dict__.pop("run", None)  # not started: as it was
                raise

        return start

    _patch_method(Thread, "start", make_start)


def _patch_futures_thread(mod):
    Executor = mod.ThreadPoolExecutor

    def make_submit(original):
        def submit(self, *args, **kwargs):
            request = current.get()
            if request is None or not args:
                return original(self, *args, **kwargs)
            fn = args[0]
            derived = ("d", request[1])

            def run_derived(*a, **kw):
                # Set and reset for this job only: the worker thread keeps
                # no request between jobs.
                token = current.set(derived)
                try:
                    return fn(*a, **kw)
                finally:
                    _restore(token, None)

            # The worker threads submit may start must not carry this
            # request (Thread.start would give it to them for good): a pool
            # made while serving request A is reused for request B.
            token = current.set(None)
            try:
                return original(self, run_derived, *args[1:], **kwargs)
            finally:
                _restore(token, request)

        return submit

    _patch_method(Executor, "submit", make_submit)


def _patch_futures_process(mod):
    Executor = mod.ProcessPoolExecutor

    def make_submit(original):
        def submit(self, *args, **kwargs):
            # The worker processes submit may fork must not carry this
            # request for good (a pool made while serving A is reused for B).
            # The jobs themselves stay unmarked: marking them would mean
            # pickling a function of this module into the worker.
            request = current.get()
            if request is None:
                return original(self, *args, **kwargs)
            token = current.set(None)
            try:
                return original(self, *args, **kwargs)
            finally:
                _restore(token, request)

        return submit

    _patch_method(Executor, "submit", make_submit)


# ---------------------------------------------------------------------------
# http.server: http.server itself, werkzeug's dev server, wsgiref, Django's
# runserver, and any BaseHTTPRequestHandler subclass.
#
# parse_request() sets the request from the parsed headers; it stays until
# the end of handle_one_request() (or of handle(), for handlers like
# wsgiref's that call parse_request from handle), so the server's access
# line and error output are marked. An exception that escapes the handler
# is printed by socketserver's handle_error() after the handler is gone: the
# request is kept for it in a thread-local slot.

_pending_error = _thread._local()


def _patch_http_server(mod):
    Handler = mod.BaseHTTPRequestHandler

    def make_parse_request(original):
        def parse_request(self):
            ok = original(self)
            try:
                request = None
                if ok:
                    headers = getattr(self, "headers", None)
                    if headers is not None:
                        request = _request(headers.get("traceparent"))
                current.set(request)
            except Exception:
                pass
            return ok

        return parse_request

    _patch_method(Handler, "parse_request", make_parse_request)

    def make_serving(depth_attr):
        def make(original):
            def serve(self, *args, **kwargs):
                try:
                    state = self.__dict__
                except AttributeError:
                    state = {}
                depth = state.get(depth_attr, 0)
                if depth:
                    # Called by an override of the same method (super()):
                    # the outermost call keeps and restores the request.
                    state[depth_attr] = depth + 1
                    try:
                        return original(self, *args, **kwargs)
                    finally:
                        state[depth_attr] = depth
                saved = current.get()
                state[depth_attr] = 1
                try:
                    return original(self, *args, **kwargs)
                except BaseException:
                    request = current.get()
                    if request is not None:
                        _pending_error.value = (getattr(self, "request", None), request)
                    raise
                finally:
                    state[depth_attr] = 0
                    current.set(saved)

            return serve

        return make

    def wrap_class(cls):
        _patch_method(cls, "handle_one_request", make_serving("_rl_one_request"))
        _patch_method(cls, "handle", make_serving("_rl_handle"))

    # Subclasses defined later are wrapped as they are made; those that
    # exist already (http.server's own) now.
    def wrap_tree(cls):
        wrap_class(cls)
        for sub in cls.__subclasses__():
            try:
                wrap_tree(sub)
            except Exception:
                pass

    wrap_tree(Handler)
    if "__init_subclass__" not in Handler.__dict__:

        def __init_subclass__(cls, **kwargs):
            super(Handler, cls).__init_subclass__(**kwargs)
            try:
                wrap_class(cls)
            except Exception:
                pass

        Handler.__init_subclass__ = classmethod(__init_subclass__)

    socketserver = sys.modules.get("socketserver")
    if socketserver is not None:

        def make_handle_error(original):
            def handle_error(self, request, client_address, *args, **kwargs):
                pending = _pending_error.__dict__.pop("value", None)
                if pending is None or pending[0] is not request:
                    return original(self, request, client_address, *args, **kwargs)
                saved = current.get()
                token = current.set(pending[1])
                try:
                    return original(self, request, client_address, *args, **kwargs)
                finally:
                    _restore(token, saved)

            return handle_error

        _patch_method(socketserver.BaseServer, "handle_error", make_handle_error)


# ---------------------------------------------------------------------------
# gunicorn: the sync and gthread workers (and the async ones) serve a parsed
# request in handle_request(), which writes the access line at its end;
# handle_error() answers a request whose handling raised.


def _request_of_gunicorn(self, args, kwargs):
    req = kwargs.get("req")
    if req is None:
        for arg in args:
            if isinstance(getattr(arg, "headers", None), list) and hasattr(arg, "uri"):
                req = arg
                break
    if req is None:
        return None
    headers = req.headers
    # gunicorn upper-cases header names: the exact name first; the search
    # that ignores case and type only when it is not there.
    try:
        for name, value in headers:
            if name == "TRACEPARENT":
                return _request(value)
    except (TypeError, ValueError):
        pass
    return _request(_header_in_pairs(headers, "traceparent"))


def _patch_gunicorn_worker(mod):
    for cls_name in ("SyncWorker", "ThreadWorker", "AsyncWorker", "Worker"):
        cls = getattr(mod, cls_name, None)
        if isinstance(cls, type) and cls.__module__ == mod.__name__:
            for method in ("handle_request", "handle_http2_request", "handle_error"):
                _patch_method(cls, method, _serving(_request_of_gunicorn))


# ---------------------------------------------------------------------------
# uvicorn: each request (and each websocket) runs in its own task, in
# run_asgi() of the protocol's cycle; the access line and "Exception in ASGI
# application" are written inside it.


def _request_of_self_scope(self, args, kwargs):
    return _request_of_asgi_scope(getattr(self, "scope", None))


def _patch_uvicorn_protocol(mod):
    for value in list(vars(mod).values()):
        if (
            isinstance(value, type)
            and value.__module__ == mod.__name__
            and _is_coroutine_function(value.__dict__.get("run_asgi"))
        ):
            _patch_method(value, "run_asgi", _serving(_request_of_self_scope))


# ---------------------------------------------------------------------------
# Framework fallbacks (see _wsgi_fallback), for servers not hooked above.


def _patch_flask(mod):
    _patch_method(mod.Flask, "wsgi_app", _wsgi_fallback)


def _patch_django_wsgi(mod):
    _patch_method(mod.WSGIHandler, "__call__", _wsgi_fallback)


def _patch_django_asgi(mod):
    _patch_method(mod.ASGIHandler, "__call__", _asgi_fallback)


def _patch_starlette(mod):
    _patch_method(mod.Starlette, "__call__", _asgi_fallback)


def _patch_logging_files(mod):
    """A sidecar reads the backend's output from files (the nonce came in a
    file, shared with it): then what logging writes to files is marked like
    stdout and stderr. That covers logging.FileHandler and its subclasses,
    and gunicorn's --error-logfile, whose wsgi.errors (where Flask logs its
    "Exception on ..." and traceback) writes to that handler's stream.
    Under replaylink run only stdout and stderr are read, and files the
    backend writes are left as they are."""
    if not _files_read or not hasattr(mod, "FileHandler"):
        return

    def make_wrapper(original):
        def _open(self, *args, **kwargs):
            stream = original(self, *args, **kwargs)
            if stream is None or type(stream) is MarkingStream or "b" in getattr(self, "mode", ""):
                return stream
            return MarkingStream(stream, _nonce)

        return _open

    _patch_method(mod.FileHandler, "_open", make_wrapper)


# Module name -> patch, run right after the module is imported (or at
# install time if it already is).
_PATCHES = {
    "logging": _patch_logging_files,
    "threading": _patch_threading,
    "concurrent.futures.thread": _patch_futures_thread,
    "concurrent.futures.process": _patch_futures_process,
    "http.server": _patch_http_server,
    "gunicorn.workers.base": _patch_gunicorn_worker,
    "gunicorn.workers.sync": _patch_gunicorn_worker,
    "gunicorn.workers.gthread": _patch_gunicorn_worker,
    "gunicorn.workers.base_async": _patch_gunicorn_worker,
    "uvicorn.protocols.http.h11_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.http.httptools_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.http.zttp_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.http.zttp_h2_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.websockets.websockets_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.websockets.websockets_sansio_impl": _patch_uvicorn_protocol,
    "uvicorn.protocols.websockets.wsproto_impl": _patch_uvicorn_protocol,
    "flask.app": _patch_flask,
    "django.core.handlers.wsgi": _patch_django_wsgi,
    "django.core.handlers.asgi": _patch_django_asgi,
    "starlette.applications": _patch_starlette,
}


def _apply_patch(name, module):
    patch = _PATCHES.get(name)
    if patch is None or module is None:
        return
    try:
        patch(module)
    except Exception:
        pass  # a server of another shape: it runs unpatched, its lines unmarked


class _PostImportFinder(object):
    """A meta path finder that finds nothing itself: for the modules in
    _PATCHES it asks the other finders for the spec and arranges for the
    patch to run right after the module's code has run."""

    def __init__(self):
        self._busy = _thread._local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _PATCHES:
            return None
        busy = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    return None  # a legacy finder first: the import system's own way
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    break
        except Exception:
            return None  # the import system asks again, and reports the error
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        try:
            _hook_loader(spec, fullname)
        except Exception:
            return None
        return spec


def _hook_loader(spec, fullname):
    loader = spec.loader
    exec_module = loader.exec_module

    def exec_and_patch(module):
        exec_module(module)
        if getattr(module, "__name__", None) == fullname:
            if loader.__dict__.get("exec_module") is exec_and_patch:
                del loader.exec_module  # the loader as it was, for reload()
            _apply_patch(fullname, module)

    if isinstance(loader, type) or not isinstance(getattr(loader, "__dict__", None), dict):
        # A class used as a loader (frozen, built-in) or one without
        # instance attributes: a stand-in for this spec only.
        spec.loader = _PatchingLoader(loader, exec_and_patch)
    else:
        # An attribute of this loader object, so the loader keeps its class
        # (code checks isinstance(module.__loader__, ...)).
        loader.exec_module = exec_and_patch


class _PatchingLoader(object):
    def __init__(self, loader, exec_module):
        self._rl_loader = loader
        self.exec_module = exec_module

    def create_module(self, spec):
        create = getattr(self._rl_loader, "create_module", None)
        return create(spec) if create is not None else None

    def __getattr__(self, name):
        if name.startswith("_rl_"):
            raise AttributeError(name)
        return getattr(self._rl_loader, name)


def install():
    """Installs the hook if there is a valid nonce. Never raises."""
    global _installed, _nonce
    if _installed:
        return
    try:
        nonce = read_nonce()
    except Exception:
        nonce = None
    if nonce is None:
        return  # no nonce: nothing at all
    _installed = True
    _nonce = nonce
    global _files_read
    _files_read = not os.environ.get(NONCE_ENV) and bool(os.environ.get(NONCE_FILE_ENV))
    try:
        _wrap_streams(nonce)
    except Exception:
        pass
    try:
        sys.meta_path.insert(0, _PostImportFinder())
    except Exception:
        pass
    for name in list(_PATCHES):
        _apply_patch(name, sys.modules.get(name))


def run_next_sitecustomize(our_file):
    """Runs the sitecustomize module that ours hides: the next one on
    sys.path after our directory, as Python would have run it. Its errors
    are its own and are raised, for site.py to report as it always does."""
    import importlib.machinery
    import importlib.util

    try:
        here = os.path.realpath(os.path.dirname(os.path.abspath(our_file)))
        entries = []
        seen_ours = False
        for entry in sys.path:
            try:
                ours = os.path.realpath(entry or os.getcwd()) == here
            except (OSError, ValueError, TypeError):
                ours = False
            if ours:
                seen_ours = True
            elif seen_ours:
                entries.append(entry)  # only what comes after our directory
        if not seen_ours:
            entries = list(sys.path)
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", entries)
        if spec is None or spec.loader is None:
            return
        if os.path.realpath(spec.origin or "") == os.path.realpath(os.path.abspath(our_file)):
            return
        module = importlib.util.module_from_spec(spec)
    except Exception:
        return
    ours = sys.modules.get("sitecustomize")
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        raise
