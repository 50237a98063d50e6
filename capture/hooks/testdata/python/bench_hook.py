"""What the Python hook costs per line: µs per line written with print and
with logging, without the hook, with the hook but outside any request, and
with the hook inside a request (every line marked).

    python3 bench_hook.py [-n LINES] [--json]

Each case runs in its own interpreter writing to /dev/null (stdout and
stderr as Python sets them up for a file: block-buffered), so the numbers
are the hook's CPU cost, not a terminal's or a pipe's. Each case is run 3
times and the best is kept.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "python"))
NONCE = "0123456789abcdef"
SPAN = "b7ad6b7169203331"
LINE = "GET /api/cart 200 handled for session 7204916803563247 in 12.5 ms"

CASES = [
    # name, hooked, in a request
    ("no hook", False, False),
    ("hook, outside a request", True, False),
    ("hook, marked lines", True, True),
]


def child(n, in_request, result_path):
    import logging

    logger = logging.getLogger("bench")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if in_request:
        import _replaylink_hook

        _replaylink_hook.current.set(("r", SPAN))
    results = {}
    for kind in ("print", "logging"):
        write = (lambda i: print(LINE, i)) if kind == "print" else (lambda i: logger.info("%s %d", LINE, i))
        for i in range(min(n, 2000)):  # warm up
            write(i)
        start = time.perf_counter()
        for i in range(n):
            write(i)
        sys.stdout.flush()
        sys.stderr.flush()
        results[kind] = (time.perf_counter() - start) / n * 1e6
    with open(result_path, "w") as f:
        json.dump(results, f)


def run_case(n, hooked, in_request):
    env = dict(os.environ)
    for name in ("PYTHONPATH", "REPLAYLINK_HOOK_NONCE", "REPLAYLINK_HOOK_NONCE_FILE", "PYTHONUNBUFFERED"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if hooked:
        env["PYTHONPATH"] = HOOK_DIR
        env["REPLAYLINK_HOOK_NONCE"] = NONCE
    best = {}
    for _ in range(3):
        with tempfile.NamedTemporaryFile(suffix=".json") as result, open(os.devnull, "w") as null:
            argv = [sys.executable, os.path.abspath(__file__), "--child", str(n), "1" if in_request else "0", result.name]
            subprocess.run(argv, env=env, stdout=null, stderr=null, check=True, timeout=600)
            with open(result.name) as f:
                got = json.load(f)
        for kind, us in got.items():
            best[kind] = min(us, best.get(kind, us))
    return best


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100000, help="lines per case and kind (default 100000)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    results = {name: run_case(args.n, hooked, in_request) for name, hooked, in_request in CASES}
    base, marked = results["no hook"], results["hook, marked lines"]
    overhead = {kind: marked[kind] - base[kind] for kind in base}
    if args.json:
        print(json.dumps({"lines": args.n, "us_per_line": results, "marked_overhead_us": overhead}, sort_keys=True))
        return
    print("python hook: µs per line, %d lines per case, to /dev/null (best of 3)" % args.n)
    print("%-26s %9s %9s" % ("", "print", "logging"))
    for name, _, _ in CASES:
        print("%-26s %9.3f %9.3f" % (name, results[name]["print"], results[name]["logging"]))
    print(
        "a marked line costs %+.3f µs (print) and %+.3f µs (logging) over no hook"
        % (overhead["print"], overhead["logging"])
    )


if __name__ == "__main__":
    main()
