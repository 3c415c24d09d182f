"""Opaque keyset cursors and `Link` headers for paginated lists."""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from starlette.datastructures import URL


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
