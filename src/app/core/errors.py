"""The error hierarchy: what our code raises on purpose, each with a stable `code`.

`app.core.problems` renders these (and every other error) as RFC 9457 problem details.
"""

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import sqlalchemy.exc
import sqlalchemy.orm.exc


class AppError(Exception):
    """Base of every error our code raises on purpose; rendered as a problem by one handler.

    Subclasses set `status_code`, `code` (stable, snake_case, listed in docs/errors.md) and
    `title`. Domain errors subclass the generic ones and give a more specific `code`.
    """

    status_code: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class NotFoundError(AppError):
    """The resource does not exist, or the caller may not know that it does."""

    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"
    title = "Not Found"


class ConflictError(AppError):
    """The request conflicts with the current state of the resource."""

    status_code = HTTPStatus.CONFLICT
    code = "conflict"
    title = "Conflict"


class UnauthorizedError(AppError):
    """Credentials are missing or invalid."""

    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class ForbiddenError(AppError):
    """The caller is known but may not do this."""

    status_code = HTTPStatus.FORBIDDEN
    code = "forbidden"
    title = "Forbidden"


class ValidationFailedError(AppError):
    """Input is well-formed but breaks a rule that only the service can check."""

    status_code = 422  # HTTPStatus names it differently before Python 3.13
    code = "validation_error"
    title = "Validation Failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        self.extra.setdefault("errors", [dict(error) for error in errors])


class _RetryableError(AppError):
    def __init__(
        self, detail: str | None = None, *, retry_after: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(0, retry_after))


class RateLimitedError(_RetryableError):
    """Too many requests; `Retry-After` says when to try again."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"
    title = "Too Many Requests"


class ServiceUnavailableError(_RetryableError):
    """A dependency the request needs is down; the request may succeed later."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
    title = "Service Unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database did not answer in time (connection lost, pool or lock wait exhausted)."""

    code = "database_unavailable"


# Errors that say the database is unreachable or overloaded, not that the request is wrong.
DATABASE_UNAVAILABLE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError)
# A write that lost a race: a row it refers to was deleted meanwhile (a foreign key), or it was
# changed first. Services handle the conflicts they expect (a taken email); these are the rest.
CONFLICTING_WRITE_ERRORS = (sqlalchemy.exc.IntegrityError, sqlalchemy.orm.exc.StaleDataError)


class ExternalServiceError(AppError):
    """An upstream service answered with an error or not at all."""

    status_code = HTTPStatus.BAD_GATEWAY
    code = "external_service_error"
    title = "Bad Gateway"


class BadRequestError(AppError):
    """The request is malformed in a way no route can accept."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "bad_request"
    title = "Bad Request"


class InvalidCharacters(BadRequestError):
    """The path or query string holds a character no route accepts (a NUL byte)."""

    code = "invalid_characters"


class InvalidHost(BadRequestError):
    """The `Host` header does not name this service."""

    code = "invalid_host"


class UnsupportedMediaType(AppError):
    """The request body's `Content-Type` is not one the API reads."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"
    title = "Unsupported Media Type"
