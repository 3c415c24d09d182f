"""The item statements, each built once per shape and run with bound parameters.

Building a statement and its cache key cost more Python than running it: an item read spent
~7% of its Python calls there, a list page ~4%. A list's shape (which filters it has, its sort,
offset or cursor paging) has a few hundred forms at most, so each is built on first use and
kept; the values of a request travel as parameters (`list_values`).

Reads (`read_statement`, `page_statement`) select columns, not entities: an item as shown needs
no unit of work, and loading a page of 50 items and their tags as ORM objects had cost ~40%
of a list request's CPU (`docs/benchmarks.md`). Each row is an item's columns and one of its tags
(outer-joined, so an item without tags has one row with `tag` None), in the page's order.
"""

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import joinedload

from app.items.models import Item, ItemTag
from app.items.schemas import ItemQuery

# A statement of columns (any number, any types).
Columns = Select[*tuple[Any, ...]]

# What a reader sees of an item (its price as stored: `models.price_of` makes it a Decimal).
SHOWN_COLUMNS = (
    Item.id,
    Item.owner_id,
    Item.title,
    Item.description,
    Item.status,
    Item.price_units,
    Item.price_scale,
    Item.currency,
    Item.version,
    Item.created_at,
    Item.updated_at,
)
# The columns a sort orders by, by name (`Item`'s attribute, or the page subquery's column).
_SORT_COLUMNS = {"created_at": "created_at", "title": "title", "price": "price_units"}


@functools.cache
def get_statement(*, include_deleted: bool, lock: bool) -> Select[Item]:
    """One item to change by `item_id`, with its tags (and its row locked, with `lock`).

    Joined, not a second SELECT: one round trip fewer. The results hold the item once per tag:
    read them through `.unique()`.
    """
    statement = select(Item).options(joinedload(Item.tag_rows))
    statement = statement.where(Item.id == bindparam("item_id"))
    if not include_deleted:
        statement = statement.where(Item.deleted_at.is_(None))
    if lock:  # the item's row only: its tags come through an outer join
        statement = statement.with_for_update(of=Item, key_share=True)
    return statement


@functools.cache
def read_statement() -> Columns:
    """One live item to show by `item_id`: its columns and tags, a row per tag."""
    statement = select(*SHOWN_COLUMNS, ItemTag.tag).outerjoin(Item.tag_rows)
    statement = statement.where(Item.id == bindparam("item_id"), Item.deleted_at.is_(None))
    return statement.order_by(ItemTag.position)


# The list's optional filters, by the name of their parameter.
_FILTERS = ("owner_id", "status", "tag", "pattern", "created_after", "created_before")


def list_values(
    query: ItemQuery, owner_id: uuid.UUID | None, after: tuple[datetime, uuid.UUID] | None
) -> dict[str, Any]:
    """The bound parameters of a list's statements: its filters, and where its page starts.

    `after` is the cursor's (created_at, id); a filter that is not set is left out.
    """
    values: dict[str, Any] = {
        "owner_id": owner_id,
        "status": query.status,
        "tag": query.tag,
        "created_after": query.created_after,
        "created_before": query.created_before,
        "limit": query.limit + 1,  # one more than the page: is there a next one?
        "offset": query.offset,
    }
    if query.q is not None:
        escaped = query.q.replace("/", "//").replace("%", "/%").replace("_", "/_")
        values["pattern"] = f"%{escaped}%"
    if after is not None:
        values["cursor_at"], values["cursor_id"] = after
    return {name: value for name, value in values.items() if value is not None}


@functools.cache
def _filtered(filters: tuple[bool, ...]) -> Columns:
    owner, status, tag, pattern, after, before = filters
    statement = select(*SHOWN_COLUMNS).where(Item.deleted_at.is_(None))
    if owner:
        statement = statement.where(Item.owner_id == bindparam("owner_id"))
    if status:
        statement = statement.where(Item.status == bindparam("status"))
    if tag:
        tagged = select(ItemTag.item_id).where(ItemTag.tag == bindparam("tag"))
        statement = statement.where(Item.id.in_(tagged))
    if pattern:
        # Both sides lowered by the database: Python lowers some letters otherwise than
        # PostgreSQL (a final Σ, İ), and a title must find itself.
        typed = bindparam("pattern", type_=String())
        statement = statement.where(func.lower(Item.title).like(func.lower(typed), escape="/"))
    if after:
        statement = statement.where(Item.created_at > bindparam("created_after"))
    if before:
        statement = statement.where(Item.created_at < bindparam("created_before"))
    return statement


def _order(sort: str, source: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    # `source`: `Item`, or the page subquery's columns (`.c`), which carry the same names.
    column, row_id = getattr(source, _SORT_COLUMNS[sort.removeprefix("-")]), source.id
    if sort.startswith("-"):
        return column.desc(), row_id.desc()
    return column.asc(), row_id.asc()


def _after_cursor(statement: Columns, descending: bool) -> Columns:
    at: BindParameter[datetime] = bindparam("cursor_at")
    row_id: BindParameter[uuid.UUID] = bindparam("cursor_id")
    if descending:
        return statement.where(
            or_(Item.created_at < at, and_(Item.created_at == at, Item.id < row_id))
        )
    return statement.where(or_(Item.created_at > at, and_(Item.created_at == at, Item.id > row_id)))


@functools.cache
def _page(filters: tuple[bool, ...], sort: str, by_cursor: bool) -> Columns:
    statement = _filtered(filters).order_by(*_order(sort, Item))
    if by_cursor:
        statement = _after_cursor(statement, descending=sort.startswith("-"))
    else:
        statement = statement.offset(bindparam("offset"))
    # The LIMIT counts items, so it stays inside; the join's rows come out in the page's order.
    page: Subquery = statement.limit(bindparam("limit")).subquery()
    joined = select(page, ItemTag.tag).outerjoin(ItemTag, ItemTag.item_id == page.c.id)
    return joined.order_by(*_order(sort, page.c), ItemTag.position)


@functools.cache
def _count(filters: tuple[bool, ...]) -> Select[int]:
    return select(func.count()).select_from(_filtered(filters).subquery())


def cached_statements() -> int:
    """How many list statements are built and kept (a few hundred shapes at most)."""
    return _filtered.cache_info().currsize + _page.cache_info().currsize


def page_statement(values: dict[str, Any], sort: str) -> Columns:
    """The page's items and tags for `list_values`' parameters (one item more than asked for)."""
    return _page(tuple(name in values for name in _FILTERS), sort, "cursor_at" in values)


def count_statement(values: dict[str, Any]) -> Select[int]:
    """The number of items matching `list_values`' filters, whatever the page."""
    return _count(tuple(name in values for name in _FILTERS))
