"""Single-file Django test project: `python django_app.py [PORT]` runs
`runserver 127.0.0.1:PORT` (with its autoreloader; DJANGO_NORELOAD=1: without)."""

import os
import sys
import time

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

import testapp_common as common

settings.configure(
    DEBUG=True,
    SECRET_KEY="replaylink-hook-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
        # "Internal Server Error: /fail" once, through the root handler;
        # django.server (the access lines) keeps Django's own handler.
        "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
    },
)


def work(request):
    tag = request.GET.get("tag", "-")
    common.work_start(tag)
    time.sleep(int(request.GET.get("ms", "0")) / 1000.0)
    common.work_end(tag)
    return HttpResponse("ok %s\n" % tag, content_type="text/plain")


def fail(request):
    common.fail(request.GET.get("tag", "-"))  # Django logs "Internal Server Error: /fail" + traceback, answers 500


def pool(request):
    tag = request.GET.get("tag", "-")
    common.pool_work(tag)
    return HttpResponse("ok %s\n" % tag, content_type="text/plain")


def thread(request):
    tag = request.GET.get("tag", "-")
    common.thread_work(tag)
    return HttpResponse("ok %s\n" % tag, content_type="text/plain")


urlpatterns = [path("work", work), path("fail", fail), path("pool", pool), path("thread", thread)]

if __name__ == "__main__":
    django.setup()
    from django.core.management import execute_from_command_line
    from django.core.servers import basehttp

    # runserver listens with a backlog of 10: a burst of connections would
    # wait for SYN retransmits (1 s, 3 s, 7 s...). 128, as werkzeug.
    basehttp.WSGIServer.request_queue_size = 128

    argv = [sys.argv[0], "runserver", "127.0.0.1:%d" % common.port_from_argv()]
    if os.environ.get("DJANGO_NORELOAD") == "1":
        argv.append("--noreload")
    execute_from_command_line(argv)
