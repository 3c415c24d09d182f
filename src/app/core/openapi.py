"""OpenAPI: problem schemas, headers and links on every operation (the pages: `docs_ui`)."""

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, Field

from app.core.openapi_links import with_links, with_password_flow, with_security
from app.core.problems import PROBLEM_MEDIA_TYPE
from app.core.routing import SINGLE_VALUE_HEADERS


class Problem(BaseModel):
    """An RFC 9457 problem details object, as every error response carries."""

    type: str = Field(examples=["https://errors.example.invalid/not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Item 7f3c was not found."])
    instance: str = Field(examples=["/api/v1/items/7f3c"])
    code: str = Field(examples=["not_found"])
    request_id: str | None = Field(examples=["b9e1c2d4-0c0e-4d5a-9a53-1f6f7f9d0c11"])


class ValidationIssue(BaseModel):
    """One invalid input: `pointer` for body fields, else `parameter`, `header` or `cookie`."""

    detail: str
    pointer: str | None = Field(default=None, examples=["#/email"])
    parameter: str | None = Field(default=None, examples=["limit"])
    header: str | None = None
    cookie: str | None = None


class ValidationProblem(Problem):
    """A 422 problem listing every invalid input."""

    errors: list[ValidationIssue]


def problem_content(schema_name: str = "Problem") -> dict[str, Any]:
    """Return an OpenAPI `content` entry for a problem response."""
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def problem_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """Document problem responses on a route: `responses=problem_responses(404, 409)`."""
    return {code: {"description": "Problem", "content": problem_content()} for code in status_codes}


def described_problems(descriptions: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """Document problem responses with what each status means on the route (its `code`s)."""
    return {
        code: {"description": description, "content": problem_content()}
        for code, description in descriptions.items()
    }


def _problem_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Problem, ValidationIssue, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "schema": schema}


_INTEGER = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}
# Every response header the API sends on purpose, described once.
_ONLY_TRUE = {"type": "string", "enum": ["true"]}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "Location": _header("The URL of the created resource.", _TEXT),
    "ETag": _header("The version of the item; send it in If-Match or If-None-Match.", _TEXT),
    "Link": _header('The next page, `<url>; rel="next"`; absent on the last page.', _TEXT),
    "Retry-After": _header("Seconds to wait before trying again.", _INTEGER),
    "Accept-Encoding": _header("The content codings a request body may have: `identity`.", _TEXT),
    "RateLimit-Policy": _header("The quotas of this path (IETF RateLimit draft).", _TEXT),
    "RateLimit": _header("The quota nearest to running out: remaining and reset.", _TEXT),
    "X-RateLimit-Limit": _header("Requests allowed in the current window.", _INTEGER),
    "X-RateLimit-Remaining": _header("Requests left in the current window.", _INTEGER),
    "X-RateLimit-Reset": _header("Seconds until the window resets.", _INTEGER),
    "WWW-Authenticate": _header('`Bearer` (`error="invalid_token"` if refused).', _TEXT),
    "Idempotent-Replayed": _header(
        "`true`: the stored answer to an earlier request with this key.", _ONLY_TRUE
    ),
}
RATE_LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
METHODS_WITH_CONTENT = frozenset({"post", "put", "patch"})
WRITE_METHODS = METHODS_WITH_CONTENT | {"delete"}
_SINGLE_VALUE_HEADERS = ", ".join(f"`{name}`" for name in SINGLE_VALUE_HEADERS)
# 204 and 304 never have content (RFC 9110 15.3.5, 15.4.5). A 202 has what its route sends: the
# export's queued job, nothing where the route answers with a bare `Response`.
_BODYLESS_STATUSES = frozenset({"204", "304"})


def response_headers(*names: str, required: bool = True) -> dict[str, Any]:
    """Return an OpenAPI `headers` entry for a route's response, e.g. `{200: ...}`."""
    return {"headers": {name: {**RESPONSE_HEADERS[name], "required": required} for name in names}}


def _problem(description: str, *headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": problem_content()}
    if headers:
        response.update(response_headers(*headers))
    return response


# Errors the pipeline answers before any route runs, so no route documents them itself.
_MALFORMED = _problem(
    "Bad Request: the body is not well-formed for its Content-Type (`malformed_body`), the path "
    "or query holds a NUL byte or the path a `%2F` (`invalid_characters`), or another malformed "
    "request."
)
_SLOW_BODY = _problem(
    "Request Timeout: the headers or the body did not arrive in full in time "
    "(`request_timeout`); the connection is closed."
)
_WRITE_CONFLICT = _problem(
    "Conflict: the change lost a race with another one made meanwhile (`conflict`); read "
    "again and retry."
)
_UPSTREAM_ERROR = _problem(
    "Bad Gateway: the identity provider failed to give the keys that check the token "
    "(`external_service_error`)."
)
_UPSTREAM_TIMEOUT = _problem(
    "Gateway Timeout: the identity provider did not answer in time (`upstream_timeout`)."
)
_HEAD_TOO_LARGE = _problem(
    "Request Header Fields Too Large: the request line and headers are over the server's limit "
    "(`request_header_too_large`); the connection is closed."
)
_TOO_LARGE = _problem("Content Too Large: the body is over the limit (`content_too_large`).")
_UNSUPPORTED = _problem(
    "Unsupported Media Type: the body's Content-Type is not one the operation reads "
    "(`unsupported_media_type`), or the body is content-coded (`unsupported_content_encoding`, "
    "with `Accept-Encoding: identity`): send it without Content-Encoding."
)
_UNSUPPORTED["headers"] = response_headers("Accept-Encoding", required=False)["headers"]
_UNAVAILABLE = _problem(
    "Service Unavailable: overloaded, past its deadline, or a dependency is down.", "Retry-After"
)
_FORBIDDEN = _problem(
    "Forbidden: the credentials lack a scope this operation needs (`insufficient_scope`), or "
    "the caller may not do this."
)
_COUNTRY_BLOCKED = "the client's country is blocked (`country_blocked`)"


def _rate_limited_problem() -> dict[str, Any]:
    # The request quota sends its RateLimit headers; an account's login throttle has no such
    # quota to report and sends only Retry-After.
    response = _problem(
        "Too Many Requests: the request quota (with the RateLimit headers) or, on routes that "
        "check a password, the account's login throttle ran out.",
        "Retry-After",
    )
    response["headers"].update(response_headers(*RATE_LIMIT_HEADERS, required=False)["headers"])
    return response


def _with_problem_responses(
    operation: dict[str, Any],
    method: str,
    *,
    limited: bool,
    scoped: bool,
    blocked: bool,
    upstream: bool,
) -> None:
    responses = operation.setdefault("responses", {})
    if scoped:
        responses.setdefault("403", _FORBIDDEN)
    if blocked:
        forbidden = responses.get("403")
        description = (
            f"{forbidden['description']} Or {_COUNTRY_BLOCKED}."
            if forbidden
            else f"Forbidden: {_COUNTRY_BLOCKED}."
        )
        responses["403"] = _problem(description)
    # Every operation: a header that takes one value sent twice is refused before any route.
    responses["422"] = {
        "description": "Validation Error: a parameter or member is invalid, or a header that "
        f"takes one value ({_SINGLE_VALUE_HEADERS}) was sent more than once.",
        "content": problem_content("ValidationProblem"),
    }
    if method in WRITE_METHODS:
        # A write that lost a race (a row changed or deleted meanwhile) is a 409 on any route.
        responses.setdefault("409", _WRITE_CONFLICT)
    if upstream:
        responses.setdefault("502", _UPSTREAM_ERROR)
        responses.setdefault("504", _UPSTREAM_TIMEOUT)
    responses.setdefault("400", _MALFORMED)
    responses.setdefault("408", _SLOW_BODY)
    responses.setdefault("413", _TOO_LARGE)
    responses.setdefault("431", _HEAD_TOO_LARGE)
    if method in METHODS_WITH_CONTENT or "requestBody" in operation:
        responses.setdefault("415", _UNSUPPORTED)
    responses.setdefault("503", _UNAVAILABLE)
    if limited or "429" in responses:
        # Also where a route documents its own 429 (a quota of its own): the same headers.
        responses["429"] = {**responses.get("429", {}), **_rate_limited_problem()}
    for status, response in responses.items():
        _with_status_headers(response, status, limited=limited)
    responses.setdefault(
        "500", {"description": "Internal Server Error", "content": problem_content()}
    )


def _with_status_headers(response: dict[str, Any], status: str, *, limited: bool) -> None:
    """Add the headers every answer with this status carries; drop bodyless statuses' content."""
    if status in _BODYLESS_STATUSES:
        response.pop("content", None)
    required = {"201": "Location", "401": "WWW-Authenticate"}.get(status)
    if required is not None:
        # Every 401 is an UnauthorizedError, which always names the scheme.
        header = {**RESPONSE_HEADERS[required], "required": True}
        response.setdefault("headers", {}).setdefault(required, header)
    if limited and status.startswith(("2", "3")):
        headers = response.setdefault("headers", {})
        for name in RATE_LIMIT_HEADERS:
            headers.setdefault(name, {**RESPONSE_HEADERS[name], "required": False})


def build_openapi(
    app: FastAPI,
    *,
    rate_limited: Callable[[str], bool] = lambda _path: False,
    scoped: Callable[[str, str], bool] = lambda _path, _method: False,
    country_blocked: Callable[[str], bool] = lambda _path: False,
    authenticated: Callable[[str, str], bool] = lambda _path, _method: False,
    security_schemes: Sequence[SecurityBase] = (),
    password_token_url: str | None = None,
    upstream_identity: bool = False,
) -> dict[str, Any]:
    """Return the schema with every answer documented: our problems and the pipeline's.

    `rate_limited(path)` says whether the rate limiter counts requests to `path`;
    `scoped(path, method)` whether the operation checks the caller's scopes (a 403);
    `country_blocked(path)` whether country blocking may refuse requests to `path` (a 403);
    `authenticated(path, method)` whether the operation accepts `security_schemes` (any one),
    which it reads itself rather than as dependencies (FastAPI documents only those);
    `password_token_url` is the login form's path, when this service owns passwords;
    `upstream_identity` whether a caller's token may be checked with an issuer's keys fetched
    on the way (OIDC): 502 and 504 on every operation that authenticates.
    """
    if app.openapi_schema:
        return app.openapi_schema
    with warnings.catch_warnings():
        # Every GET route also answers HEAD (app.api), which shares the GET's operation id;
        # the HEAD operations are dropped below, so the duplicate ids never reach the document.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
    for path, path_item in schema.get("paths", {}).items():
        if "get" in path_item:
            path_item.pop("head", None)
        for method, operation in path_item.items():
            if authenticated(path, method):
                with_security(schema, operation, security_schemes)
            _with_problem_responses(
                operation,
                method,
                limited=rate_limited(path),
                scoped=scoped(path, method),
                blocked=country_blocked(path),
                upstream=upstream_identity and "security" in operation,
            )
    with_links(schema.get("paths", {}))
    if password_token_url is not None:
        with_password_flow(schema, password_token_url)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.update(_problem_schemas())
    app.openapi_schema = schema
    return schema
