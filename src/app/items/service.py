"""Items: create, read, list with filters and two kinds of paging, change, delete, restore."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.core.conditional import PreconditionFailed
from app.core.errors import ValidationFailedError
from app.db.base import utcnow
from app.db.pagination import CursorError, decode_cursor, encode_cursor
from app.items import queries
from app.items.exceptions import InvalidCursor
from app.items.models import Item, ItemTag, price_of
from app.items.schemas import REQUIRED_MEMBERS, ItemCreate, ItemQuery, ItemRead

_SHOWN = TypeAdapter(list[ItemRead])


def _set_tags(item: Item, tags: Sequence[str]) -> None:
    item.tag_rows = [ItemTag(tag=tag, position=index) for index, tag in enumerate(tags)]


async def get(
    *, session: AsyncSession, item_id: uuid.UUID, include_deleted: bool = False, lock: bool = False
) -> Item | None:
    """Return the item with its tags, or None (also for soft-deleted ones unless asked).

    `lock`: hold the item's row until the transaction ends, for a change decided on what it
    reads (PostgreSQL; SQLite's writers run one at a time anyway).
    """
    statement = queries.get_statement(include_deleted=include_deleted, lock=lock)
    return (await session.scalars(statement, {"item_id": item_id})).unique().one_or_none()


def _shown(rows: Sequence[Row[Any]]) -> list[ItemRead]:
    """Items as shown, from rows of an item's columns and one of its tags, in their order."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        if (item := found.get(row.id)) is None:
            price = price_of(row.price_units, row.price_scale)
            item = found[row.id] = {**row._asdict(), "price": price, "tags": []}
        if row.tag is not None:
            item["tags"].append(row.tag)
    # One validation for the lot (in Rust); the stored columns it does not show are ignored.
    return _SHOWN.validate_python(list(found.values()))


async def read(*, session: AsyncSession, item_id: uuid.UUID) -> ItemRead | None:
    """Return a live item as shown, or None: for reading only (`get` loads one to change)."""
    rows = (await session.execute(queries.read_statement(), {"item_id": item_id})).all()
    return _shown(rows)[0] if rows else None


async def owned_ids(*, session: AsyncSession, owner_id: uuid.UUID) -> list[uuid.UUID]:
    """Return the ids of every item of `owner_id`, soft-deleted ones too."""
    return list(await session.scalars(select(Item.id).where(Item.owner_id == owner_id)))


async def create(*, session: AsyncSession, owner_id: uuid.UUID, data: ItemCreate) -> Item:
    """Store a new item for `owner_id`."""
    item = Item(
        owner_id=owner_id,
        title=data.title,
        description=data.description,
        status=data.status,
        currency=data.currency,
        tag_rows=[],
    )
    _set_tags(item, data.tags)
    item.price = data.price
    session.add(item)
    await session.flush()
    return item


async def _flush_versioned(session: AsyncSession) -> None:
    try:
        await session.flush()
    except StaleDataError as exc:  # a concurrent writer committed a newer version first
        raise PreconditionFailed("The item changed meanwhile; read it again and retry.") from exc


def _refuse_removing_required(changes: dict[str, Any]) -> None:
    removed = [name for name in REQUIRED_MEMBERS if name in changes and changes[name] is None]
    if removed:
        raise ValidationFailedError(
            "These members cannot be removed.",
            errors=[
                {"detail": "Required; null is not allowed.", "pointer": f"#/{name}"}
                for name in removed
            ],
        )


async def update(*, session: AsyncSession, item: Item, changes: dict[str, Any]) -> Item:
    """Apply a merge patch (the members sent); the version grows by one when anything changed.

    Raise `ValidationFailedError` when the patch removes (`null`) a required member.
    """
    _refuse_removing_required(changes)
    if "tags" in changes:
        tags = changes.pop("tags") or []
        if tags != item.tags:
            _set_tags(item, tags)
            # Tags live in their own table: touch the item so its version (and ETag) moves.
            item.updated_at = utcnow()
    if changes.get("description", "") is None:
        changes["description"] = ""  # merge-patch null removes it: back to empty
    for field, value in changes.items():
        setattr(item, field, value)
    await _flush_versioned(session)
    return item


async def soft_delete(*, session: AsyncSession, item: Item) -> None:
    """Hide the item from every read; `restore` brings it back."""
    item.soft_delete()
    await _flush_versioned(session)


async def restore(*, session: AsyncSession, item: Item) -> Item:
    """Undo a soft delete."""
    item.restore()
    await _flush_versioned(session)
    return item


def _cursor_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return decode_cursor(cursor)
    except CursorError as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc


async def list_items(
    *, session: AsyncSession, query: ItemQuery, owner_id: uuid.UUID | None
) -> tuple[list[ItemRead], int | None, str | None]:
    """Return one page as shown, the total (offset paging only) and the next cursor (if any).

    With `cursor`, pages are keyset on (created_at, id): no duplicates, and every row that
    existed when the walk began is met (one whose insert commits after the walk passed its
    `created_at` is not: docs/items.md). Cursors exist for the created_at sorts only.
    """
    keyset = query.sort.removeprefix("-") == "created_at"
    if query.cursor is not None and not keyset:
        raise InvalidCursor("Cursors page by creation time: use sort=created_at or -created_at.")
    after = None if query.cursor is None else _cursor_position(query.cursor)
    values = queries.list_values(query, owner_id, after)
    page_query = queries.page_statement(values, query.sort)
    found = _shown((await session.execute(page_query, values)).all())
    page, more = found[: query.limit], len(found) > query.limit
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more and keyset else None
    total = None
    if query.cursor is None:
        total = await _total(session, values, query.offset, page, more=more)
    return page, total, next_cursor


async def _total(
    session: AsyncSession, values: dict[str, Any], offset: int, page: list[ItemRead], *, more: bool
) -> int | None:
    """The number of matching rows; counted only when the page does not tell it.

    A page that ends the list (and is not past its end) says how many rows there are: most
    lists fit on one page and need no COUNT, whose cost grows with the rows it counts.
    """
    if not more and (page or offset == 0):
        return offset + len(page)
    return await session.scalar(queries.count_statement(values), values)
