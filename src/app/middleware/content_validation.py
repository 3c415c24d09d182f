"""Content validation: what a request's shape says before any route reads it.

415 for body types the operation does not read and for content-coded bodies, 400 for NUL bytes
and encoded slashes, 422 for a query parameter given more than once that takes one value, and
for a header that takes one value (`Authorization`...) sent more than once.
"""

import re
from collections.abc import Callable, Collection, Sequence
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import (
    InvalidCharacters,
    UnsupportedContentEncoding,
    UnsupportedMediaType,
    ValidationFailedError,
)
from app.core.problems import ProblemRenderer
from app.core.routing import SINGLE_VALUE_HEADERS, bare_media_type
from app.middleware.scope import route_path

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
REPEATED = "This parameter takes one value; it was given more than once."
REPEATED_HEADER = "This header takes one value; it was sent more than once."
ENFORCE_BARE_MEDIA_TYPE = "Allowed media types must be like 'application/json', without parameters."
IDENTITY = "identity"
# Nothing decodes a request body: a coded one would be read as if plain (RFC 9110 section 8.4).
NOT_DECODED = "The request body must not be content-coded; send it without Content-Encoding."
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _undocumented(_method: str, _path: str) -> Collection[str] | None:
    return None


def _none_single_valued(_method: str, _path: str) -> Collection[str]:
    return ()


def _repeated_parameters(scope: Scope) -> list[str]:
    """The names the query string gives more than once, in order (read as Starlette reads it)."""
    query: bytes = scope.get("query_string") or b""
    if b"&" not in query:
        return []
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def _has_nul(scope: Scope) -> bool:
    """Whether the raw path, the decoded path or the query string holds a NUL, raw or `%00`."""
    raw_path = scope.get("raw_path") or b""
    query = scope.get("query_string") or b""
    return "\x00" in scope["path"] or any(
        b"\x00" in part or b"%00" in part for part in (raw_path, query)
    )


def _has_encoded_slash(scope: Scope) -> bool:
    """Whether the raw path spells a `/` as `%2F`: routed as a separator, it is another URI."""
    raw_path: bytes = scope.get("raw_path") or b""
    return b"%2f" in raw_path.lower()


def _invalid_characters(scope: Scope) -> str | None:
    """Why the path or query cannot be served as sent (the 400's detail); None when it can."""
    if _has_nul(scope):
        return "The path or query string contains a NUL byte."
    if _has_encoded_slash(scope):
        # The router decodes it: `/items/{id}%2Frestore` reached `/items/{id}/restore`, a path
        # a proxy or filter that matches the raw path never saw.
        return "The path contains an encoded slash (%2F); send each segment as it is."
    return None


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


def _content_codings(headers: Headers) -> list[str]:
    """The codings `Content-Encoding` applies to the body, `identity` (no coding) left out."""
    return [
        coding
        for value in headers.getlist("content-encoding")
        for coding in (part.strip().lower() for part in value.split(","))
        if coding and coding != IDENTITY
    ]


def _media_type(headers: Headers) -> str | None:
    """Return the bare media type of `Content-Type` (`application/json`), lower case."""
    return bare_media_type(headers.get("content-type", "")) or None


class ContentValidationMiddleware:
    """Refuse NUL in the path or query (400) and bodies of types the operation does not read (415).

    A body read with a `Content-Encoding` (other than `identity`) is a 415 too, with
    `Accept-Encoding: identity`: nothing decodes it, so a gzip body would be parsed as if plain.

    `documented(method, path)` gives the media types an operation documents for its body (None
    for an operation without one): a body of any other type is refused, whatever the method.
    A POST, PUT or PATCH to an operation without a documented body may carry any type of
    `allowed_media_types`. A request without a body passes, as does a GET with any
    `Content-Type`. Parameters such as `charset` are allowed.

    `single_valued(method, path)` names the query parameters an operation documents as taking
    one value: one given twice is a 422 naming it. The framework would keep one of the values
    and drop the other without a word, and a proxy or a filter in front may read the other
    (parameter pollution). The same holds for `single_headers`, the request headers that take
    one value (RFC 9110 section 5.3): one sent twice is a 422 naming it.
    """

    def __init__(
        self,
        app: ASGIApp,
        renderer: ProblemRenderer,
        allowed_media_types: Sequence[str] = DEFAULT_ALLOWED_MEDIA_TYPES,
        documented: Callable[[str, str], Collection[str] | None] | None = None,
        *,
        single_valued: Callable[[str, str], Collection[str]] | None = None,
        single_headers: Collection[str] = SINGLE_VALUE_HEADERS,
    ) -> None:
        allowed = frozenset(media_type.strip().lower() for media_type in allowed_media_types)
        if not allowed or not all(_MEDIA_TYPE.fullmatch(media_type) for media_type in allowed):
            raise ValueError(ENFORCE_BARE_MEDIA_TYPE)
        self.app = app
        self.renderer = renderer
        self.allowed = allowed
        self.documented = documented or _undocumented
        self.single_valued = single_valued or _none_single_valued
        self.single_headers = {name.lower().encode("latin-1"): name for name in single_headers}

    def _accepted(self, scope: Scope) -> Collection[str] | None:
        """The media types a body of this request may have; None: any (no body is read)."""
        documented = self.documented(scope["method"], route_path(scope))
        if documented is not None:
            return documented
        return self.allowed if scope["method"] in METHODS_WITH_CONTENT else None

    def _repeated(self, scope: Scope) -> ValidationFailedError | None:
        """The 422 for single-valued parameters the query string repeats, if it repeats any."""
        repeated = _repeated_parameters(scope)
        if not repeated:
            return None
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        single = self.single_valued(method, route_path(scope))
        errors = [{"parameter": name, "detail": REPEATED} for name in repeated if name in single]
        if not errors:
            return None
        return ValidationFailedError(
            "The request is not valid; see `errors` for each problem.", errors=errors
        )

    def _repeated_headers(self, scope: Scope) -> ValidationFailedError | None:
        """The 422 for headers taking one value that the request sends more than once."""
        seen: set[bytes] = set()
        repeated: list[str] = []
        for raw_name, _ in scope["headers"]:
            name = raw_name.lower()
            if name in self.single_headers:
                if name in seen and self.single_headers[name] not in repeated:
                    repeated.append(self.single_headers[name])
                seen.add(name)
        if not repeated:
            return None
        errors = [{"header": name, "detail": REPEATED_HEADER} for name in repeated]
        return ValidationFailedError(
            "The request is not valid; see `errors` for each problem.", errors=errors
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        if (detail := _invalid_characters(scope)) is not None:
            invalid = InvalidCharacters(detail)
            await self.renderer.from_exception(scope, invalid)(scope, receive, send)
            return

        if (repeated := self._repeated(scope) or self._repeated_headers(scope)) is not None:
            await self.renderer.from_exception(scope, repeated)(scope, receive, send)
            return

        headers = Headers(scope=scope)
        if _has_content(headers) and (refused := self._refused_body(scope, headers)) is not None:
            await self.renderer.from_exception(scope, refused)(scope, receive, send)
            return

        await self.app(scope, receive, send)

    def _refused_body(self, scope: Scope, headers: Headers) -> UnsupportedMediaType | None:
        """The 415 for a body of a type the operation does not read, or a coded one."""
        accepted = self._accepted(scope)
        if accepted is None:
            return None  # no body is read: neither its type nor its coding matters
        if not accepted:
            return UnsupportedMediaType("This operation takes no request body.")
        if _media_type(headers) not in accepted:
            return UnsupportedMediaType(
                f"The request body must be one of: {', '.join(sorted(accepted))}."
            )
        if _content_codings(headers):
            # RFC 9110 section 12.5.3: Accept-Encoding on a 415 names the codings accepted.
            return UnsupportedContentEncoding(NOT_DECODED, headers={"Accept-Encoding": IDENTITY})
        return None
