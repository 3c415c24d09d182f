"""Paginated lists: the one page schema, opaque keyset cursors and the `Link` header."""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import URL

from app.core.types import Integer

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Deep offsets cost a scan each; past this, lists that have cursors page with them.
MAX_OFFSET = 1_000_000

T = TypeVar("T")


class PageQuery(BaseModel):
    """Offset paging: `limit` rows from `offset` (query parameters).

    A parameter the list does not know is a 422, as a body's unknown field is: `?limt=5` is a
    mistake to report, not a page of the default size.
    """

    model_config = ConfigDict(extra="forbid")

    limit: Integer = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: Integer = Field(default=0, ge=0, le=MAX_OFFSET)


class Page(BaseModel, Generic[T]):
    """One page of a list: `total` with offset paging, `next_cursor` when a next page exists.

    Subclass it per list (`class ItemPage(Page[ItemRead])`) so the schema has a readable name.
    """

    items: list[T]
    limit: int
    offset: int | None = None
    total: int | None = Field(default=None, description="Matching rows (offset paging only).")
    next_cursor: str | None = None

    def next_link(self, url: URL) -> str | None:
        """Return the `Link` header to the next page of `url`, or None on the last page."""
        if self.next_cursor is not None:
            return next_link(url, cursor=self.next_cursor)
        if self.offset is not None and self.total is not None:
            following = self.offset + self.limit
            if following < self.total:
                return next_link(url, offset=following)
        return None


class CursorError(ValueError):
    """A cursor that this API did not issue."""


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """Return an opaque cursor for the position after (`created_at`, `row_id`)."""
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Return the position a cursor stands for, or raise `CursorError`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        instant = datetime.fromisoformat(created_at)
        if instant.tzinfo is None:
            raise CursorError("not a cursor this API issued")
        return instant.astimezone(UTC), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise CursorError("not a cursor this API issued") from exc


def next_link(url: URL, **params: str | int) -> str:
    """Return a `Link` header value pointing at `url` with `params` replaced: rel="next"."""
    return f'<{url.include_query_params(**params)}>; rel="next"'
