"""Flask test app: `python flask_app.py [PORT]` serves it with werkzeug's
threaded dev server (FLASK_RELOAD=1: with the reloader); gunicorn serves
`flask_app:app` (run it from this directory or with --chdir)."""

import os
import time

from flask import Flask, request

import testapp_common as common

common.setup_logging()
app = Flask(__name__)


@app.route("/work")
def work():
    tag = request.args.get("tag", "-")
    common.work_start(tag)
    time.sleep(int(request.args.get("ms", "0")) / 1000.0)
    common.work_end(tag)
    return "ok %s\n" % tag


@app.route("/fail")
def fail():
    common.fail(request.args.get("tag", "-"))  # Flask logs "Exception on /fail [GET]" + traceback, answers 500


@app.route("/pool")
def pool():
    tag = request.args.get("tag", "-")
    common.pool_work(tag)
    return "ok %s\n" % tag


@app.route("/thread")
def thread():
    tag = request.args.get("tag", "-")
    common.thread_work(tag)
    return "ok %s\n" % tag


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=common.port_from_argv(),
        threaded=True,
        use_reloader=os.environ.get("FLASK_RELOAD") == "1",
    )
