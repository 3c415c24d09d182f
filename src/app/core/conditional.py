"""Conditional requests (RFC 9110 section 13): ETag checks for reads and writes."""

from app.core.errors import AppError


class PreconditionFailed(AppError):
    """`If-Match` names a version that is no longer current: someone changed it first."""

    status_code = 412
    code = "precondition_failed"
    title = "Precondition Failed"


class PreconditionRequired(AppError):
    """The route requires `If-Match` (REQUIRE_IF_MATCH) and the request has none."""

    status_code = 428
    code = "precondition_required"
    title = "Precondition Required"


def _tags(value: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


def is_not_modified(value: str | None, etag: str) -> bool:
    """Whether `If-None-Match` (`value`) names the current ETag (or `*`): answer 304."""
    return value is not None and (value.strip() == "*" or etag in _tags(value))


def check_if_match(value: str | None, etag: str, *, required: bool) -> None:
    """Raise 412 when `If-Match` (`value`) names another version, 428 when required and absent."""
    if value is None:
        if required:
            raise PreconditionRequired("Send If-Match with the item's current ETag.")
        return
    # If-Match uses the strong comparison: weak validators never match (RFC 9110 13.1.1).
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    if value.strip() != "*" and etag not in tags:
        raise PreconditionFailed("The item changed since you read it; read it again and retry.")
