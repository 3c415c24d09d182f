"""The error hierarchy: what our code raises on purpose, each with a stable `code`.

`app.core.problems` renders these (and every other error) as RFC 9457 problem details.
"""

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import redis.exceptions
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


class CountryBlockedError(ForbiddenError):
    """The client's address is in a country this service does not serve (`GEOIP_*`)."""

    code = "country_blocked"


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


class DeadlineExceededError(ServiceUnavailableError):
    """The request ran past its deadline (`REQUEST_TIMEOUT_SECONDS`) and was stopped."""

    code = "deadline_exceeded"


class RequestTimeoutError(AppError):
    """The request's body (or, under `app serve`, its headers) did not arrive in time.

    The connection is closed with the answer: the rest of the request was never read.
    """

    status_code = HTTPStatus.REQUEST_TIMEOUT
    code = "request_timeout"
    title = "Request Timeout"


class RequestHeaderTooLargeError(AppError):
    """The request line and headers are over `MAX_REQUEST_HEADER_BYTES` (`app serve`)."""

    status_code = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    code = "request_header_too_large"
    title = "Request Header Fields Too Large"


class OverloadedError(ServiceUnavailableError):
    """This worker has as many requests in flight as it takes (`MAX_CONCURRENT_REQUESTS`)."""

    code = "overloaded"


class UpstreamUnavailableError(ServiceUnavailableError):
    """Another service the request needs is unreachable, failing, or rested by its breaker."""

    code = "upstream_unavailable"


class UpstreamTimeoutError(AppError):
    """The request ran past its deadline while waiting for an upstream service."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "upstream_timeout"
    title = "Gateway Timeout"


# Errors that say the database is unreachable or overloaded, not that the request is wrong.
# The engine wraps every failure to connect as an `OperationalError` (`db.session`).
DATABASE_UNAVAILABLE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError)
# PostgreSQL SQLSTATEs that mean the same (drivers report them as generic DBAPI errors):
# connection exceptions (08), insufficient resources such as too many connections (53),
# operator intervention: shutdown, restart, statement timeout (57), lock_timeout (55P03), and
# a transaction the server rolled back to break a deadlock (40P01) or a serialization conflict
# (40001), and a write refused by a read-only server (25006: a failover left the pool on what is
# now a standby, or the database was set read-only for maintenance): each passes when tried again.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
_UNAVAILABLE_SQLSTATES = frozenset({"55P03", "40P01", "40001", "25006"})
# Redis failing where it is required (fail-closed paths): a connection error, timeout, or the
# client's circuit breaker refusing while Redis rests (a `ConnectionError` too).
REDIS_UNAVAILABLE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# A Redis that answers but refuses the command for its own state, which passes when that
# does: out of memory (`maxmemory` with `noeviction`), a read-only replica (after a failover),
# a cluster or its primary down, or a slot moving. Commands in a request are not at fault.
_REDIS_REFUSING_ERRORS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)
# The same refusals for which redis-py has no class of its own: snapshots failing on a full
# disk (MISCONF), a script running too long (BUSY), a replica without its primary (MASTERDOWN).
_REDIS_REFUSING_PREFIXES = ("MISCONF ", "BUSY ", "MASTERDOWN ")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable, restarting, or gave up waiting.

    Those answer 503 with `Retry-After`; any other database error is a bug (500) or a
    conflict. Decided by the driver's own signals: SQLAlchemy's disconnect detection
    (`connection_invalidated`) and the SQLSTATE the server sent.
    """
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        return True
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and (
        sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in _UNAVAILABLE_SQLSTATES
    )


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


class CorsRefused(BadRequestError):
    """A CORS preflight asked for an origin, method or header the service does not allow."""

    code = "cors_refused"


class MalformedBodyError(BadRequestError):
    """The body cannot be read as its `Content-Type` says: truncated, not UTF-8, nested too deep."""

    code = "malformed_body"


class InvalidHost(BadRequestError):
    """The `Host` header does not name this service."""

    code = "invalid_host"


class UnsupportedMediaType(AppError):
    """The request body's `Content-Type` is not one the API reads."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"
    title = "Unsupported Media Type"


class UnsupportedContentEncoding(UnsupportedMediaType):
    """The request body is content-coded (`Content-Encoding: gzip`...); the API reads it plain."""

    code = "unsupported_content_encoding"


def is_redis_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means Redis cannot serve now: unreachable, slow, or refusing for its state.

    Those answer 503 with `Retry-After` where Redis is required; any other Redis error (a wrong
    type, a bad argument) is a bug.
    """
    if isinstance(exc, (*REDIS_UNAVAILABLE_ERRORS, *_REDIS_REFUSING_ERRORS)):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        _REDIS_REFUSING_PREFIXES
    )


def json_pointer(path: Iterable[object]) -> str:
    """The pointer to a member of a request body, as `errors` give it: `#/tags/0`.

    RFC 6901 in its URI fragment form; `~` and `/` in a name are escaped as `~0` and `~1`.
    """
    return "#" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
