"""Tiny inline ASGI apps for middleware tests, in Starlette's style."""

from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.problems import request_id_of


async def echo_request_id(request: Request) -> Response:
    return JSONResponse({"request_id": request_id_of(request.scope)})


async def fail(request: Request) -> Response:
    raise RuntimeError("boom")


async def fail_mid_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("boom after start")

    return StreamingResponse(chunks())


def inline_app(
    *middleware: Middleware, extra: Callable[[Starlette], None] | None = None
) -> Starlette:
    app = Starlette(
        routes=[
            Route("/items/{item_id}", echo_request_id),
            Route("/fail", fail),
            Route("/stream-fail", fail_mid_stream),
        ],
        middleware=list(middleware),
    )
    if extra is not None:
        extra(app)
    return app
