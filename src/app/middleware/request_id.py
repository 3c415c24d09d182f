"""Request ID: accept a well-formed `X-Request-ID` or make one; bind it to logs; echo it."""

import re
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import bind_request_context

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def incoming_request_id(scope: Scope) -> str | None:
    """Return the client's request id when it is safe to reuse (≤128 of `[A-Za-z0-9._-]`)."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.fullmatch(candidate) else None
    return None


class RequestIdMiddleware:
    """Give every HTTP request an id, stored in `scope["state"]["request_id"]`.

    `on_request_id`, if given, is called with each id (tracing records it on the span).
    """

    def __init__(self, app: ASGIApp, *, on_request_id: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.on_request_id = on_request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = incoming_request_id(scope) or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        bind_request_context(request_id=request_id)
        if self.on_request_id is not None:
            self.on_request_id(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0] != REQUEST_ID_HEADER]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_request_id)
