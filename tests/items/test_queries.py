"""Item statements are built once per shape; a request's values travel as parameters only."""

import uuid
from datetime import UTC, datetime

from app.items import queries
from app.items.models import ItemStatus
from app.items.schemas import ItemQuery


def test_one_statement_serves_every_value_of_a_shape() -> None:
    first = ItemQuery(status=ItemStatus.ACTIVE, tag="red", q="lamp", offset=0, limit=10)
    second = ItemQuery(status=ItemStatus.DRAFT, tag="blue", q="50%_off", offset=40, limit=3)
    a = queries.list_values(first, uuid.uuid4(), None)
    b = queries.list_values(second, uuid.uuid4(), None)
    assert queries.page_statement(a, "-created_at") is queries.page_statement(b, "-created_at")
    assert queries.count_statement(a) is queries.count_statement(b)
    assert a["pattern"] == "%lamp%"
    assert b["pattern"] == "%50/%/_off%"


def test_shapes_differ_by_filter_sort_and_paging() -> None:
    owner, moment = uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC)
    plain = queries.list_values(ItemQuery(), owner, None)
    everyone = queries.list_values(ItemQuery(), None, None)
    filtered = queries.list_values(ItemQuery(created_after=moment), owner, None)
    by_cursor = queries.list_values(ItemQuery(), owner, (moment, uuid.uuid4()))
    statements = {
        id(queries.page_statement(plain, "-created_at")),
        id(queries.page_statement(everyone, "-created_at")),
        id(queries.page_statement(filtered, "-created_at")),
        id(queries.page_statement(plain, "title")),
        id(queries.page_statement(by_cursor, "-created_at")),
    }
    assert len(statements) == 5
    assert "offset" in plain
    assert "cursor_at" in by_cursor


def test_values_never_grow_the_cache() -> None:
    before = queries.cached_statements()
    for n in range(50):
        query = ItemQuery(tag=f"tag{n}", q=f"word {n}", offset=n, limit=n + 1)
        queries.page_statement(queries.list_values(query, uuid.uuid4(), None), "price")
    assert queries.cached_statements() - before <= 2  # this shape's page and its filters
