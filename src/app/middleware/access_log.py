"""Access log: one structured line per request, and `X-Process-Time` on the response if asked."""

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("app.access")

_SERVER_ERROR = 500


def route_template(scope: Scope) -> str | None:
    """Return the matched route's full path template (`/api/v1/items/{item_id}`), not the path.

    FastAPI resolves routes of included routers lazily and records the full template in its
    own scope entry; `scope["route"]` alone would give only the part after the prefix.
    """
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if fastapi_scope else None
    template = getattr(context, "path_format", None)
    if template:
        return str(template)
    return getattr(scope.get("route"), "path", None)


def client_address(scope: Scope) -> str | None:
    """Return the client host as the server (or a trusted proxy layer) reported it."""
    client = scope.get("client")
    return client[0] if client else None


class AccessLogMiddleware:
    """Log method, route template, status, duration and client of every HTTP request.

    With `process_time_header`, responses carry `X-Process-Time`: useful in development, but
    it times the work behind an answer (a known email costs more than an unknown one), so
    elsewhere it stays off.
    """

    def __init__(self, app: ASGIApp, *, process_time_header: bool = False) -> None:
        self.app = app
        self.process_time_header = process_time_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = _SERVER_ERROR

        async def send_with_timing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.process_time_header:
                    elapsed = f"{(time.perf_counter() - started) * 1000:.2f}ms"
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"x-process-time", elapsed.encode("ascii")),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            emit = log.error if status >= _SERVER_ERROR else log.info
            emit(
                "request",
                method=scope["method"],
                route=route_template(scope),
                path=scope["path"],
                status=status,
                duration_ms=duration_ms,
                client=client_address(scope),
            )
