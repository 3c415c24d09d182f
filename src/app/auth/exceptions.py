"""Errors of authentication: every one says as little as it can."""

from app.core.errors import ConflictError, ForbiddenError, UnauthorizedError, ValidationFailedError


class InvalidCredentials(UnauthorizedError):
    """Wrong email, wrong password or inactive account: one answer for all three."""

    code = "invalid_credentials"
    title = "Invalid Credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class NotAuthenticated(UnauthorizedError):
    """The request carries no usable credentials."""

    code = "not_authenticated"
    title = "Not Authenticated"


class InvalidToken(UnauthorizedError):
    """A token that is malformed, expired, revoked or of the wrong kind."""

    code = "invalid_token"
    title = "Invalid Token"

    def __init__(self, detail: str = "The token is invalid or has expired.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InsufficientScope(ForbiddenError):
    """The API key lacks a scope the route needs."""

    code = "insufficient_scope"
    title = "Insufficient Scope"


class SuperuserRequired(ForbiddenError):
    """Only superusers may do this."""

    code = "superuser_required"
    title = "Superuser Required"


class InvalidActionToken(ValidationFailedError):
    """A password-reset or verification token that is unknown, used or expired."""

    code = "invalid_action_token"
    title = "Invalid Or Expired Token"

    def __init__(self) -> None:
        super().__init__("The token is invalid, already used or expired.")


class AccountLinkRefused(ConflictError):
    """An identity provider's sign-in whose email belongs to a local account not linkable to it."""

    code = "account_link_refused"
    title = "Account Link Refused"

    def __init__(self) -> None:
        super().__init__(
            "A local account uses this email but has not confirmed it; confirm it by mail, "
            "or ask an administrator."
        )


class ApiKeyNotAllowed(ForbiddenError):
    """What needs a signed-in person: credentials, account deletion and access, logout-all."""

    code = "api_key_not_allowed"
    title = "Not Allowed With An API Key"


class FreshLoginRequired(UnauthorizedError):
    """A sensitive change needs the current password, or a login of the last few minutes."""

    code = "fresh_login_required"
    title = "Fresh Login Required"
