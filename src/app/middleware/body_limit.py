"""Body limits: bodies over the limit get a 413 problem, counted as they stream."""

from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import PROBLEM_MEDIA_TYPE, ProblemRenderer

ENFORCE_BODY_SIZE = "max_body_size must be a non-negative integer number of bytes."

_CONTENT_TOO_LARGE = 413
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


def has_body(scope: Scope) -> bool:
    """Whether the request may carry a body: any `Content-Length` or `Transfer-Encoding`."""
    return any(name in _BODY_HEADERS for name, _ in scope["headers"])


def _is_problem(message: Message) -> bool:
    return any(
        name == b"content-type" and value.startswith(PROBLEM_MEDIA_TYPE.encode("latin-1"))
        for name, value in message.get("headers", ())
    )


class BodyLimitMiddleware:
    """The framework's request body limit for the whole app, its 413 rendered as our problem.

    This is the limiter `FastAPI(max_body_size=...)` installs: Starlette's, which counts bytes
    as they stream (chunked bodies too) and lets a route raise or lower the limit with its own
    `max_body_size=`. Passed to `FastAPI()`, though, it sits outside every middleware of ours,
    and when `Content-Length` is over the limit it replaces whatever the app answers with a
    plain-text 413 sent straight to the server: no problem body, no request id, and a spurious
    "exception after response started" in our log. Installed here instead, inside the request
    id, access log and server error layers, its 413 passes through them and this layer turns
    it into the same problem the exception handlers render for a 413.
    """

    def __init__(self, app: ASGIApp, max_body_size: int, renderer: ProblemRenderer) -> None:
        if (
            isinstance(max_body_size, bool)
            or not isinstance(max_body_size, int)
            or max_body_size < 0
        ):
            raise ValueError(ENFORCE_BODY_SIZE)
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size=max_body_size)
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            # Without Content-Length or Transfer-Encoding an HTTP request has no body to limit.
            await self.app(scope, receive, send)
            return

        replaced = False

        async def send_as_problem(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the body of the plain 413 we replaced
            if (
                message["type"] == "http.response.start"
                and message["status"] == _CONTENT_TOO_LARGE
                and not _is_problem(message)
            ):
                replaced = True
                error = HTTPException(_CONTENT_TOO_LARGE, detail="Content Too Large")
                await self.renderer.from_exception(scope, error)(scope, receive, send)
                return
            await send(message)

        await self.limited(scope, receive, send_as_problem)
