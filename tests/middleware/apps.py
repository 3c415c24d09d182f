"""Tiny inline ASGI apps for middleware tests, in Starlette's style, and their renderer."""

from collections.abc import AsyncIterator, Callable

from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.core.problems import ProblemRenderer, request_id_of

RENDERER = ProblemRenderer("https://errors.test/")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


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


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"bytes": len(body)})


async def refuse_as_text(request: Request) -> Response:
    return PlainTextResponse("nope", status_code=413)


async def nothing(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")


def body_client(*middleware: Middleware) -> AsyncClient:
    """A client for an app that answers the size of the body it read (and a plain-text 413)."""
    app = Starlette(
        routes=[
            Route("/items", echo, methods=METHODS),
            Route("/text-413", refuse_as_text, methods=["GET", "POST"]),
        ],
        middleware=list(middleware),
    )
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")
