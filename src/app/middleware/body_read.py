"""Body reading: a request's body is read in full before the request takes any resource.

A client may send its body as slowly as it likes, a byte now and then or nothing after the
headers. Read by the route, such a body would hold a load-shedding slot (and, in the route, a
database connection) until the request deadline: a hundred such connections would refuse
every other request. Read here first, it holds nothing but its connection and its bytes, for
at most a bounded time.
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import RequestTimeoutError
from app.core.problems import ProblemRenderer
from app.middleware.body_limit import has_body


class BodyReadMiddleware:
    """Read each HTTP request's body, within `seconds`, before the layers inside run.

    A body that has not arrived in full within `seconds` of the headers is answered 408
    `request_timeout` and its connection closed. Up to `buffer_bytes` are read ahead; a longer
    body (whose `Content-Length` says so, or that streams past it) goes on streaming to the
    app, whose body limit refuses it or whose route allows it. Requests without a body pass
    straight through.
    """

    def __init__(
        self, app: ASGIApp, *, seconds: float, buffer_bytes: int, renderer: ProblemRenderer
    ) -> None:
        if seconds <= 0 or buffer_bytes < 0:
            raise ValueError("seconds must be more than zero, buffer_bytes zero or more.")
        self.app = app
        self.seconds = seconds
        self.buffer_bytes = buffer_bytes
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope) or self._announced_too_long(scope):
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.seconds):
                first = await self._read_ahead(receive)
        except TimeoutError:
            error = RequestTimeoutError(
                f"The request body did not arrive within {self.seconds:g} seconds.",
                headers={"Connection": "close"},
            )
            await self.renderer.from_exception(scope, error)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return first

        await self.app(scope, replay, send)

    async def _read_ahead(self, receive: Receive) -> Message:
        """Receive the body (up to just past `buffer_bytes`) as one message to hand on."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message  # the client went away: the app hears it as it would have
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if not more or size > self.buffer_bytes:
                return {"type": "http.request", "body": b"".join(chunks), "more_body": more}

    def _announced_too_long(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return not value.isdigit() or int(value) > self.buffer_bytes
        return False
