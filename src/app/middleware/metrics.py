"""Request metrics: count every HTTP request by method, route template and status, and time it.

The route label is the matched route's template (`/api/v1/items/{item_id}`), never the path;
paths no route matched share one label, `unmatched`, and methods outside the standard ones
share `OTHER`, so a flood of random paths or verbs adds no series.
"""

import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.access_log import route_template

UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)
_SERVER_ERROR = 500


class RequestObserver(Protocol):
    """Where the middleware reports (the metrics registry's side, built in the wiring)."""

    def started(self) -> None:
        """A request arrived."""

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request was answered (or failed: status 500) after `seconds`."""

    def replayed(self) -> None:
        """The response was a replay (it carried the `replayed_header`)."""


class MetricsMiddleware:
    """Report each HTTP request to `observer`: its start, then method, route, status, time.

    With `replayed_header`, POST responses that carry it are also reported as replays (the
    idempotency layer marks a replayed response that way).
    """

    def __init__(
        self, app: ASGIApp, *, observer: RequestObserver, replayed_header: str | None = None
    ) -> None:
        self.app = app
        self.observer = observer
        self.replayed_header = (
            replayed_header.lower().encode("latin-1") if replayed_header else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        observer = self.observer
        method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
        watch_replays = self.replayed_header is not None and method == "POST"
        status = _SERVER_ERROR
        replayed = False
        observer.started()
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                if watch_replays:
                    headers = message.get("headers", ())
                    replayed = any(name == self.replayed_header for name, _ in headers)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            route = route_template(scope) or UNMATCHED_ROUTE
            observer.finished(method, route, status, time.perf_counter() - started)
            if replayed:
                observer.replayed()
