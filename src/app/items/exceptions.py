"""Errors of the items domain."""

import uuid

from app.core.errors import NotFoundError, ValidationFailedError


class ItemNotFound(NotFoundError):
    """No such item among those the caller may see (other users' items included)."""

    code = "item_not_found"
    title = "Item Not Found"

    def __init__(self, item_id: uuid.UUID) -> None:
        super().__init__(f"Item {item_id} was not found.")


class InvalidCursor(ValidationFailedError):
    """A `cursor` that this API did not issue, or one used with a sort it does not fit."""

    code = "invalid_cursor"
    title = "Invalid Cursor"
