"""RFC 9457 problem details: one renderer for every error path, and the handlers that use it."""

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import httpx2
import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.core.errors import (
    CONFLICTING_WRITE_ERRORS,
    AppError,
    ConflictError,
    DatabaseUnavailableError,
    MalformedBodyError,
    ServiceUnavailableError,
    ValidationFailedError,
    is_database_unavailable,
    is_redis_unavailable,
    json_pointer,
)
from app.core.log_redact import scrub
from app.core.upstream import upstream_problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
GENERIC_SERVER_ERROR_DETAIL = (
    "An unexpected error occurred. Quote the request_id when reporting it."
)

# FastAPI's answer to a body it cannot decode (not UTF-8, nested too deep): the same failure as
# truncated JSON, which it reports as a 422 `json_invalid` error instead.
FASTAPI_BODY_PARSE_DETAIL = "There was an error parsing the body"
MALFORMED_BODY_DETAIL = "The request body is not well-formed for its Content-Type."

log = structlog.get_logger(__name__)

_BODYLESS_STATUSES = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})
# RFC 9110 names, which `HTTPStatus` uses only from Python 3.13: codes must not change with it.
_RFC_9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


# Failures of a dependency, not of the request (the database and Redis are told apart by their
# signals).
_UNAVAILABLE_ERRORS = httpx2.HTTPError


class ProblemResponse(JSONResponse):
    """A JSON response with the problem+json media type."""

    media_type = PROBLEM_MEDIA_TYPE


def status_phrase(status_code: int) -> str:
    """Return the RFC 9110 reason phrase of a status code (`Method Not Allowed`), or `Error`."""
    if status_code in _RFC_9110_PHRASES:
        return _RFC_9110_PHRASES[status_code]
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def snake_case_phrase(status_code: int) -> str:
    """Return the machine code for a bare HTTP status, e.g. 405 -> `method_not_allowed`."""
    phrase = status_phrase(status_code)
    if phrase == "Error":
        return "http_error"
    return phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def request_id_of(scope: Scope) -> str | None:
    """Return the request id the request id middleware stored in the scope, if any."""
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class ProblemRenderer:
    """Builds problem responses; knows the base URI that turns codes into `type` URIs.

    `on_problem`, if given, hears the status and code of every problem rendered: every error
    answer passes here, so metrics count auth failures here, not in each place that fails.
    """

    def __init__(
        self,
        type_base_url: str,
        *,
        expose_exceptions: bool = False,
        on_problem: Callable[[int, str], None] | None = None,
    ) -> None:
        self.type_base_url = type_base_url.rstrip("/") + "/"
        self.expose_exceptions = expose_exceptions
        self.on_problem = on_problem

    def type_uri(self, code: str) -> str:
        """Return the stable `type` URI documented for `code`."""
        return self.type_base_url + code.replace("_", "-")

    def render(
        self,
        scope: Scope,
        *,
        status_code: int,
        code: str,
        title: str,
        detail: str,
        problem_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Response:
        """Return the problem+json response for one error."""
        if self.on_problem is not None:
            self.on_problem(int(status_code), code)
        body: dict[str, Any] = {
            "type": problem_type or self.type_uri(code),
            "title": title,
            "status": int(status_code),
            "detail": detail,
            "instance": scope.get("path", ""),
            "code": code,
            "request_id": request_id_of(scope),
            **(extra or {}),
        }
        return ProblemResponse(body, status_code=int(status_code), headers=headers)

    def server_error(self, scope: Scope, exc: Exception | None = None) -> Response:
        """Return the generic 500 problem: no stack trace, and no exception text unless DEBUG."""
        extra = {}
        if exc is not None and self.expose_exceptions:
            extra["exception"] = scrub(f"{type(exc).__name__}: {exc}")
        return self.render(
            scope,
            status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
            code="internal_error",
            title="Internal Server Error",
            detail=GENERIC_SERVER_ERROR_DETAIL,
            extra=extra,
        )

    def from_exception(self, scope: Scope, exc: Exception) -> Response:
        """Return the problem for any exception; unexpected ones are logged with their trace."""
        if _is_malformed_body(exc):
            exc = MalformedBodyError(MALFORMED_BODY_DETAIL)
        if isinstance(exc, AppError):
            return self.render(
                scope,
                status_code=exc.status_code,
                code=exc.code,
                title=exc.title,
                detail=exc.detail,
                headers=exc.headers,
                extra=exc.extra,
            )
        if isinstance(exc, RequestValidationError):
            return self.render(
                scope,
                status_code=ValidationFailedError.status_code,
                code=ValidationFailedError.code,
                title=ValidationFailedError.title,
                detail="The request is not valid; see `errors` for each problem.",
                extra={"errors": [_validation_item(error) for error in exc.errors()]},
            )
        if isinstance(exc, HTTPException):
            return self._from_http_exception(scope, exc)
        if (
            isinstance(exc, _UNAVAILABLE_ERRORS)
            or is_database_unavailable(exc)
            or is_redis_unavailable(exc)
        ):
            return self._unavailable(scope, exc)
        if isinstance(exc, CONFLICTING_WRITE_ERRORS):
            log.info("write_conflict", path=scope.get("path"), error=type(exc).__name__)
            conflict = ConflictError(
                "The request conflicts with a change made meanwhile; read again and retry."
            )
            return self.from_exception(scope, conflict)
        log.error("unhandled_exception", path=scope.get("path"), exc_info=exc)
        return self.server_error(scope, exc)

    def _unavailable(self, scope: Scope, exc: Exception) -> Response:
        # Lost connections, pool exhaustion, lock waits that ran out: the request may well
        # succeed a moment later, so say so (503 + Retry-After) instead of a bare 500.
        if isinstance(exc, httpx2.HTTPError):
            # A call to another service that the route could not do without: 503/504/502.
            log.warning("upstream_failed", path=scope.get("path"), error=type(exc).__name__)
            return self.from_exception(scope, upstream_problem(exc))
        if not is_database_unavailable(exc):
            # Redis, where a path cannot do without it (fail-closed): the others handle it.
            log.warning("redis_unavailable", path=scope.get("path"), error=type(exc).__name__)
            redis = ServiceUnavailableError(
                "Redis cannot serve right now; retry shortly.", retry_after=1
            )
            return self.from_exception(scope, redis)
        log.warning("database_unavailable", path=scope.get("path"), error=type(exc).__name__)
        error = DatabaseUnavailableError(retry_after=1)
        return self.render(
            scope,
            status_code=error.status_code,
            code=error.code,
            title=error.title,
            detail="The database is busy or unreachable; retry shortly.",
            headers=error.headers,
        )

    def _from_http_exception(self, scope: Scope, exc: HTTPException) -> Response:
        if exc.status_code in _BODYLESS_STATUSES:
            return Response(status_code=exc.status_code, headers=exc.headers)
        title = status_phrase(exc.status_code)
        return self.render(
            scope,
            status_code=exc.status_code,
            code=snake_case_phrase(exc.status_code),
            title=title,
            detail=str(exc.detail) or title,
            problem_type="about:blank",
            headers=exc.headers,
        )


def _is_malformed_body(exc: Exception) -> bool:
    """Whether FastAPI failed to decode the body, in either of the two ways it reports that."""
    if isinstance(exc, RequestValidationError):
        return any(error.get("type") == "json_invalid" for error in exc.errors())
    return (
        isinstance(exc, HTTPException)
        and exc.status_code == HTTPStatus.BAD_REQUEST
        and exc.detail == FASTAPI_BODY_PARSE_DETAIL
    )


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """Return the `Allow` value for a path: the methods of every route that matches it.

    The router answers 405 with the methods of the first route on the path only, while one path
    is often served by several routes (GET and PATCH and DELETE on `/items/{id}`).
    """
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        match, _ = route.matches({**scope, "method": ""})
        if match is not Match.NONE:
            methods.update(route.methods or ())
    return ", ".join(sorted(methods))


def _validation_item(error: Mapping[str, Any]) -> dict[str, str]:
    location = tuple(error.get("loc", ()))
    item = {"detail": str(error.get("msg", "Invalid value."))}
    source, path = (location[0], location[1:]) if location else ("body", ())
    if source == "body":
        item["pointer"] = json_pointer(path)
    elif source in ("header", "cookie"):
        item[str(source)] = str(path[0]) if path else ""
    else:
        item["parameter"] = ".".join(str(part) for part in path)
    return item


def register_exception_handlers(app: FastAPI, renderer: ProblemRenderer) -> None:
    """Render our errors, FastAPI's and Starlette's, and unexpected ones as problems."""

    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            allow = allowed_methods(request.app.router.routes, request.scope)
            exc = HTTPException(
                exc.status_code, exc.detail, {**(exc.headers or {}), "Allow": allow}
            )
        return renderer.from_exception(request.scope, exc)

    for exc_class in (AppError, HTTPException, RequestValidationError, Exception):
        app.add_exception_handler(exc_class, handle)
