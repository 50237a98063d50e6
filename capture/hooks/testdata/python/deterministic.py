"""Writes the same bytes on every run, partly while serving one request.

    python deterministic.py TRACEPARENT

It starts an http.server on a free loopback port, sends itself one GET with
that traceparent, and the handler writes the awkward cases (lines longer
than 4 KiB, ANSI colours, lines split across writes, several lines in one
write, print's sep/end, writelines, empty and CRLF lines, a mark with
another nonce, binary writes, a thread's line, stderr) before answering.
The handler logs no access line (it would hold a time and a port). The last
line has no newline.

Every line's first character says how the hook must mark it: "R" (or an
empty line) in the request, "D" in a thread it started, "O" outside any
request, "B" binary writes (never marked). A line that starts in the
request and ends outside it is marked once, at its start.

Without the hook the output is the same minus the marks: stripping the
marks of the run's nonce from the hooked output gives exactly the bytes of
an unhooked run.
"""

import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

FOREIGN = "\x1b_rl1;fedcba9876543210;r0123456789abcdef\x1b\\"


def in_request():
    out, err = sys.stdout, sys.stderr
    print("R a line in the request")
    print("R long " + "x" * 5000)  # more than 4 KiB
    print("R longer " + "".join("%05d," % i for i in range(12000)))  # more than a pipe's 64 KiB
    out.write("R first\nR second\nR third")  # three lines in one write, the last left open
    out.write(" (third continued)\n")
    out.write("R split ")
    out.write("")  # nothing: no line starts
    out.write("across ")
    out.write("writes\n")
    print("R \x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m")
    print("R", "sep", "and", 3, None, sep="--", end="!\n")
    out.writelines(["R w1\n", "R w2\n", "R w3 ", "continued\n"])
    out.write("\n\n")  # two empty lines
    out.write("R crlf\r\nR progress 10%\rR progress 100%\n")
    print("R unicode h\u00e9llo \u2713 \u65e5\u672c")
    print("R foreign mark next: " + FOREIGN + "(kept as text)")
    print(FOREIGN + "R a line that starts with a foreign mark")
    print("R to stderr", file=sys.stderr, flush=True)
    err.write("R e1\nR e2\n")
    out.flush()
    out.buffer.write(b"B binary line\n")
    out.buffer.flush()
    t = threading.Thread(target=print, args=("D from a thread",))
    t.start()
    t.join()
    out.write("R a line left open by the request, ")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        in_request()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        pass  # no access line: it holds a time and a port


def main():
    traceparent = sys.argv[1]
    print("O before the request")
    sys.stdout.write("O \x1b[34mblue\x1b[0m outside\n")
    server = HTTPServer(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.handle_request)
    serving.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/", headers={"traceparent": traceparent})
    assert conn.getresponse().read() == b"ok"
    conn.close()
    serving.join(10)
    server.server_close()
    sys.stdout.write("closed outside\n")
    print("O after the request")
    print("O stderr after", file=sys.stderr)
    sys.stdout.write("O last line without newline")


if __name__ == "__main__":
    main()
