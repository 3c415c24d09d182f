"""Errors of the users domain."""

from app.core.errors import ConflictError, NotFoundError, UnauthorizedError


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


class EmailUnchanged(ConflictError):
    """An email change to the address the account already has.

    A conflict with the account's state, not bad input: the same request is valid for any
    other account, and the document's schema cannot know the current address.
    """

    code = "email_unchanged"
    title = "Email Unchanged"


class LastSuperuser(ConflictError):
    """The change would leave no active superuser: nobody could administer the service."""

    code = "last_superuser"
    title = "Last Superuser"
