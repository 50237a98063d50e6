"""Starlette (ASGI) test app: `python asgi_app.py [PORT]` serves it with
uvicorn; or `python -m uvicorn asgi_app:app --app-dir DIR --port P
[--workers N] [--http h11|httptools]`."""

import asyncio
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import testapp_common as common

common.setup_logging()


async def work(request):
    tag = request.query_params.get("tag", "-")
    common.work_start(tag)
    await asyncio.sleep(int(request.query_params.get("ms", "0")) / 1000.0)
    common.work_end(tag)
    return PlainTextResponse("ok %s\n" % tag)


def work_sync(request):
    # A sync endpoint: Starlette runs it in a worker thread (anyio), in a
    # copy of the request's context.
    tag = request.query_params.get("tag", "-")
    common.work_start(tag)
    time.sleep(int(request.query_params.get("ms", "0")) / 1000.0)
    common.work_end(tag)
    return PlainTextResponse("ok %s\n" % tag)


async def fail(request):
    # Starlette answers 500, uvicorn logs "Exception in ASGI application" + traceback.
    common.fail(request.query_params.get("tag", "-"))


async def pool(request):
    tag = request.query_params.get("tag", "-")
    await asyncio.wrap_future(common.pool_submit(tag))
    return PlainTextResponse("ok %s\n" % tag)


async def thread(request):
    tag = request.query_params.get("tag", "-")
    common.thread_work(tag)
    return PlainTextResponse("ok %s\n" % tag)


app = Starlette(
    routes=[
        Route("/work", work),
        Route("/work_sync", work_sync),
        Route("/fail", fail),
        Route("/pool", pool),
        Route("/thread", thread),
    ]
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=common.port_from_argv())
