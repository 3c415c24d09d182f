"""The route class of every router: a body that gives one member twice is a 422.

JSON (RFC 8259 section 4) leaves an object with a repeated name to each parser: Python keeps
the last, a proxy, a filter or an audit log in front may read the first. A form field sent twice
would be read the same way. Like a repeated query parameter (content validation middleware),
each is refused, naming the member, instead of one value being dropped without a word.
"""

import json
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute

from app.core.errors import MalformedBodyError, ValidationFailedError, json_pointer

REPEATED_MEMBER = "This member takes one value; it was given more than once."
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_INVALID = "The request is not valid; see `errors` for each problem."


class _Repeats(dict[str, Any]):
    """A JSON object whose names repeat: the names are kept, to locate them once parsed."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        counts = Counter(name for name, _ in pairs)
        self.repeated = [name for name, count in counts.items() if count > 1]


def _repeated_pointers(document: Any) -> list[str]:
    """The pointer to every repeated member of a parsed document, in document order."""
    found: list[str] = []
    # A stack, not recursion: the parser accepted this depth, a recursive walk might not.
    stack: list[tuple[tuple[object, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Repeats):
            found += [json_pointer((*path, name)) for name in value.repeated]
        children: list[tuple[object, Any]]
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        stack += [((*path, key), child) for key, child in reversed(children)]
    return found


def bare_media_type(content_type: str) -> str:
    """The media type of a `Content-Type` value, lower case, without parameters ("" if none)."""
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    """What FastAPI reads as JSON: `application/json` and any `application/*+json`."""
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _parse_json(request: Request) -> None:
    """Parse the body once, refusing repeated names; FastAPI then reads the parsed value.

    The body must be UTF-8 (RFC 8259 section 8.1; a leading byte order mark is ignored):
    `json.loads` given bytes also reads UTF-16 and UTF-32, which a filter in front reading
    UTF-8 would see as something else.
    """
    body = await request.body()
    if not body:
        return
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedBodyError("The body is not UTF-8.") from None
    repeats = False

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeats
        found = dict(pairs)  # the C-built dict does the common case
        if len(found) == len(pairs):
            return found
        repeats = True
        return _Repeats(pairs)

    try:
        parsed = json.loads(text, object_pairs_hook=members)
    except (ValueError, RecursionError):
        # Not JSON, or nested too deep: FastAPI's own parse answers it, as any malformed body.
        return
    if repeats:
        issues = [
            {"pointer": pointer, "detail": REPEATED_MEMBER}
            for pointer in _repeated_pointers(parsed)
        ]
        raise ValidationFailedError(_INVALID, errors=issues)
    request._json = parsed  # Starlette's cache: `request.json()` returns it, unparsed again


def _declared_fields(body_field: Any) -> frozenset[str]:
    """The names of the fields a body model declares (a form's: `username`, `password`...)."""
    model = getattr(body_field.field_info, "annotation", None)
    fields = getattr(model, "model_fields", {})
    return frozenset(field.alias or name for name, field in fields.items())


async def _check_form(request: Request, declared: frozenset[str]) -> None:
    """Refuse a urlencoded form that gives a declared field twice (none takes a list).

    A field the form does not declare is not read, so it may repeat (as an array would).
    """
    body = await request.body()  # cached: the form parser reads these bytes again
    counts = Counter(name for name, _ in parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    repeated = sorted(name for name, count in counts.items() if count > 1 and name in declared)
    if repeated:
        errors = [{"pointer": f"#/{name}", "detail": REPEATED_MEMBER} for name in repeated]
        raise ValidationFailedError(_INVALID, errors=errors)


# The request headers the API reads one value of (RFC 9110 section 5.3: none is a list): the
# credentials, the idempotency key, the body's type, a download's date condition, and the host
# (RFC 9112 section 3.2: a
# request with two is a 400 at the server; ours passes them on, and the first would build
# `Location` while a proxy routed by the other). tests/test_repeated_headers.py checks the
# document's security schemes and header parameters against it.
SINGLE_VALUE_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Idempotency-Key",
    "Content-Type",
    "If-Modified-Since",
    "Host",
)
NO_CONTENT = 204


class StrictBodyRoute(APIRoute):
    """A route whose JSON or form body may give each member once; give it with `route_class=`.

    A 204 route answers with a bare `Response` unless it names its class: no `Content-Type`
    for content there is none of (RFC 9110 section 15.3.5).

    Routes without a body run unchanged. A JSON body is still parsed once: the parse that
    checks the names is the one the endpoint gets (an `object_pairs_hook` call per object,
    about 1.5 µs more for a typical item body).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("status_code") == NO_CONTENT and isinstance(
            kwargs.get("response_class"), DefaultPlaceholder
        ):
            # FastAPI's default, JSONResponse, would send its `Content-Type` with no content.
            kwargs["response_class"] = Response
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler of a route with a body: check its members first."""
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        declared = _declared_fields(self.body_field)

        async def handle(request: Request) -> Response:
            media_type = bare_media_type(request.headers.get("content-type", ""))
            if _is_json(media_type):
                await _parse_json(request)
            elif media_type == FORM_MEDIA_TYPE:
                await _check_form(request, declared)
            return await handler(request)

        return handle
