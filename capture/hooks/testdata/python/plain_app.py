"""http.server test app: `python plain_app.py [PORT]`, a ThreadingHTTPServer.

Besides the common endpoints, /crash?tag=T lets an exception escape the
handler: socketserver prints it ("Exception occurred during processing of
request from ...") and the connection closes without an answer.
"""

import logging
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import testapp_common as common


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        tag = query.get("tag", "-")
        if url.path == "/work":
            common.work_start(tag)
            time.sleep(int(query.get("ms", "0")) / 1000.0)
            common.work_end(tag)
        elif url.path == "/fail":
            try:
                common.fail(tag)
            except Exception:
                # What a framework does: log the traceback, answer 500.
                logging.getLogger("app").error("Exception on /fail [GET]\n%s", traceback.format_exc().rstrip("\n"))
                return self.answer(500, "error %s\n" % tag)
        elif url.path == "/crash":
            common.fail(tag)
        elif url.path == "/pool":
            common.pool_work(tag)
        elif url.path == "/thread":
            common.thread_work(tag)
        else:
            return self.answer(404, "not found\n")
        self.answer(200, "ok %s\n" % tag)

    def answer(self, code, body):
        data = body.encode()
        self.send_response(code)  # writes the access line (log_request) to stderr
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of connections
    # would wait for SYN retransmits (1 s, 3 s, 7 s...). 128, as werkzeug.
    request_queue_size = 128


if __name__ == "__main__":
    common.setup_logging()
    port = common.port_from_argv()
    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("serving on 127.0.0.1:%d" % port, flush=True)
    server.serve_forever()
