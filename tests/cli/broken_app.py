"""A deliberately broken service for the verifier: what a bad deployment looks like.

No security headers, no request ids, readiness 500, plain-text errors, no rate limiting, and
registration that answers 500.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def ok(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def broken(_: Request) -> PlainTextResponse:
    return PlainTextResponse("Internal Server Error", status_code=500)


async def not_found(_: Request, __: Exception) -> PlainTextResponse:
    return PlainTextResponse("Not Found", status_code=404)


app = Starlette(
    routes=[
        Route("/health", ok),
        Route("/api/v1/health/live", ok),
        Route("/api/v1/health/ready", broken),
        Route("/api/v1/meta", ok),
        Route("/api/v1/users", broken, methods=["POST"]),
    ],
    exception_handlers={404: not_found},
)
