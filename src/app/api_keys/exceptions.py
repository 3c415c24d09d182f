"""Errors of the API keys domain."""

from app.core.errors import NotFoundError, ValidationFailedError


class ApiKeyNotFound(NotFoundError):
    """No such key among the caller's keys."""

    code = "api_key_not_found"
    title = "API Key Not Found"


class ExpiryInThePast(ValidationFailedError):
    """A key cannot be created already expired."""

    code = "expiry_in_the_past"
    title = "Expiry In The Past"


class ExpiryTooLate(ValidationFailedError):
    """A key may not outlive the maximum lifetime, nor the key that creates it."""

    code = "expiry_too_late"
    title = "Expiry Too Late"
