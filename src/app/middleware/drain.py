"""Draining: while the process is about to stop, responses close their connections."""

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DrainMiddleware:
    """While `draining()` is true, every response says `Connection: close`.

    After SIGTERM the server keeps serving for a while, so the load balancer can notice that
    readiness fails and stop sending. Clients and proxies holding a kept-alive connection would
    go on using it; closing each connection after its response makes them open a new one,
    which the load balancer sends elsewhere. No connection is then left for the server to cut
    when it stops.
    """

    def __init__(self, app: ASGIApp, *, draining: Callable[[], bool]) -> None:
        self.app = app
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.draining():
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)
