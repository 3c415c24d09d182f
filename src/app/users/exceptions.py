"""Errors of the users domain."""

from app.core.errors import ConflictError, NotFoundError, UnauthorizedError, ValidationFailedError


class EmailTaken(ConflictError):
    """Another account already uses this email."""

    code = "email_taken"
    title = "Email Already Registered"


class UserNotFound(NotFoundError):
    """No such user (or the caller may not know of it)."""

    code = "user_not_found"
    title = "User Not Found"


class WrongPassword(UnauthorizedError):
    """The current password given to confirm a change is wrong."""

    code = "wrong_password"
    title = "Wrong Password"


class EmailUnchanged(ValidationFailedError):
    """An email change to the address the account already has."""

    code = "email_unchanged"
    title = "Email Unchanged"
