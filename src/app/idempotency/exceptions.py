"""Errors of the Idempotency-Key mechanism."""

from http import HTTPStatus

from app.core.errors import AppError, ConflictError, ValidationFailedError

# A claim is short: a client that retries after a second finds the first request finished.
IN_PROGRESS_RETRY_AFTER_SECONDS = 1


class InvalidIdempotencyKey(AppError):
    """The `Idempotency-Key` header is empty or longer than 255 characters."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "idempotency_key_invalid"
    title = "Invalid Idempotency Key"


class IdempotencyKeyInProgress(ConflictError):
    """A request with this key is still running; retry shortly to get its response."""

    code = "idempotency_key_in_progress"
    title = "Idempotency Key In Progress"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "A request with this Idempotency-Key is still being processed.",
            headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_SECONDS)},
        )


class IdempotencyKeyReused(ValidationFailedError):
    """The key was first used for another request (method, path or body differ)."""

    code = "idempotency_key_reused"
    title = "Idempotency Key Reused"
