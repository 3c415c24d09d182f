"""Last line of defence: an unexpected exception becomes a logged 500 problem, not a trace."""

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import ProblemRenderer

log = structlog.get_logger(__name__)

CLIENT_CLOSED_REQUEST = 499


class ServerErrorMiddleware:
    """Answer unhandled exceptions with a generic 500 problem; the trace goes to the log.

    It sits inside the request id and access log layers, so the 500 carries the request id
    and is logged like any other response. Unlike Starlette's own, it does not re-raise: the
    error is fully handled here, and the server would only log it a second time.
    """

    def __init__(self, app: ASGIApp, renderer: ProblemRenderer) -> None:
        self.app = app
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except ClientDisconnect:
            # The client left before its body arrived: no server fault, and no one to answer.
            # 499 (nginx's "client closed request") tells the access log and the metrics so.
            if not response_started:
                await send({"type": "http.response.start", "status": CLIENT_CLOSED_REQUEST})
                await send({"type": "http.response.body", "body": b""})
        except Exception as exc:
            if response_started:
                # Too late for a problem body: the server must drop the connection.
                log.exception("exception_after_response_started", path=scope["path"])
                raise
            response = self.renderer.from_exception(scope, exc)
            await response(scope, receive, send)
