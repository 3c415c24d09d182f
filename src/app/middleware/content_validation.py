"""Body limits and content validation: 413 for big bodies, 415 for odd types, 400 for NUL bytes."""

import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import PROBLEM_MEDIA_TYPE, ProblemRenderer

# Exact types only: a `+json` suffix is not enough. FastAPI would parse any `application/*+json`
# body as JSON, so a JSON Patch (`application/json-patch+json`) sent to a merge-patch route
# would be misread as a merge document instead of being refused.
DEFAULT_ALLOWED_MEDIA_TYPES = (
    "application/json",
    "application/merge-patch+json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
)
METHODS_WITH_CONTENT = frozenset({"POST", "PUT", "PATCH"})
ENFORCE_BARE_MEDIA_TYPE = "Allowed media types must be like 'application/json', without parameters."
ENFORCE_BODY_SIZE = "max_body_size must be a non-negative integer number of bytes."

_CONTENT_TOO_LARGE = 413
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


def _has_nul(scope: Scope) -> bool:
    """Whether the raw path, the decoded path or the query string holds a NUL, raw or `%00`."""
    raw_path = scope.get("raw_path") or b""
    query = scope.get("query_string") or b""
    return "\x00" in scope["path"] or any(
        b"\x00" in part or b"%00" in part for part in (raw_path, query)
    )


def _has_content(headers: Headers) -> bool:
    """Whether the request announces a body: a non-zero `Content-Length`, or chunked."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    length = headers.get("content-length")
    if length is None:
        return False
    try:
        return int(length) > 0
    except ValueError:
        return True  # a server would not pass this on; refuse rather than guess


def _has_body(scope: Scope) -> bool:
    """Whether the request may carry a body: any `Content-Length` or `Transfer-Encoding`."""
    return any(name in _BODY_HEADERS for name, _ in scope["headers"])


def _media_type(headers: Headers) -> str | None:
    """Return the bare media type of `Content-Type` (`application/json`), lower case."""
    value = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return value or None


class ContentValidationMiddleware:
    """Refuse NUL bytes in path or query (400) and bodies of types outside the allowlist (415).

    Only POST, PUT and PATCH requests that carry a body are checked for their type: a bodyless
    POST, or a GET with any `Content-Type`, passes. Parameters such as `charset` are allowed.
    """

    def __init__(
        self,
        app: ASGIApp,
        renderer: ProblemRenderer,
        allowed_media_types: Sequence[str] = DEFAULT_ALLOWED_MEDIA_TYPES,
    ) -> None:
        allowed = frozenset(media_type.strip().lower() for media_type in allowed_media_types)
        if not allowed or not all(_MEDIA_TYPE.fullmatch(media_type) for media_type in allowed):
            raise ValueError(ENFORCE_BARE_MEDIA_TYPE)
        self.app = app
        self.renderer = renderer
        self.allowed = allowed
        self.allowed_text = ", ".join(sorted(allowed))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        if _has_nul(scope):
            response = self.renderer.render(
                scope,
                status_code=400,
                code="invalid_characters",
                title="Bad Request",
                detail="The path or query string contains a NUL byte.",
            )
            await response(scope, receive, send)
            return

        headers = Headers(scope=scope)
        if (
            scope["method"] in METHODS_WITH_CONTENT
            and _has_content(headers)
            and _media_type(headers) not in self.allowed
        ):
            response = self.renderer.render(
                scope,
                status_code=415,
                code="unsupported_media_type",
                title="Unsupported Media Type",
                detail=f"The request body must be one of: {self.allowed_text}.",
            )
            await response(scope, receive, send)
            return

        await self.app(scope, receive, send)


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
        if scope["type"] != "http" or not _has_body(scope):
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
