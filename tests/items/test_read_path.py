"""Items are shown from rows, not ORM objects (`items.service.read`, `list_items`): what a
reader sees must be what the ORM-loaded item shows, for every item, page, sort and filter.
"""

import uuid
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import select

from app.items import service as items_service
from app.items.models import Item
from app.items.schemas import ItemQuery, ItemRead, Sort
from tests.harness import factory
from tests.identity import signed_up
from tests.items.helpers import ALICE, ITEMS, create_item, item_url, list_page

pytestmark = pytest.mark.anyio

# Items that differ in everything a row carries: tags (none, one, many in a given order,
# ones that sort otherwise than given), price scales, statuses, texts.
VARIETY: list[dict[str, Any]] = [
    {"title": "no tags", "price": "0", "tags": []},
    {"title": "one tag", "price": "19.90", "tags": ["solo"], "status": "active"},
    {"title": "Zebra", "price": "1.2345", "tags": ["z", "a", "m", "b", "y"]},
    {"title": "ähnlich", "price": "99999999999999", "tags": ["ü", "ß"], "status": "archived"},
    {"title": "alpha", "price": "7", "tags": ["a"], "description": "x" * 300},
    {"title": "Beta", "price": "0.50", "tags": ["b", "a"], "currency": "JPY"},
]


async def _orm_shown(app: FastAPI, item_id: str) -> dict[str, Any]:
    async with factory(app)() as session:
        item = await items_service.get(session=session, item_id=uuid.UUID(item_id))
        assert item is not None
        return ItemRead.of(item).model_dump(mode="json")


async def test_an_item_read_from_rows_is_the_orm_items_view(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    created = [await create_item(client, alice, **fields) for fields in VARIETY]

    for body in created:
        expected = await _orm_shown(app, body["id"])
        async with factory(app)() as session:
            shown = await items_service.read(session=session, item_id=uuid.UUID(body["id"]))
        assert shown is not None
        assert shown.model_dump(mode="json") == expected == body
        read = await client.get(item_url(body["id"]), headers=alice)
        assert read.json() == expected
    assert [body["tags"] for body in created] == [fields["tags"] for fields in VARIETY]


async def test_a_deleted_or_unknown_item_reads_as_none(app: FastAPI, client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    gone = await create_item(client, alice)
    assert (await client.delete(item_url(gone["id"]), headers=alice)).status_code == 204

    async with factory(app)() as session:
        assert await items_service.read(session=session, item_id=uuid.UUID(gone["id"])) is None
        assert await items_service.read(session=session, item_id=uuid.uuid4()) is None


@pytest.mark.parametrize("sort", get_args(Sort))
async def test_every_sort_pages_the_orm_items_views_in_order(
    app: FastAPI, client: AsyncClient, sort: str
) -> None:
    alice = await signed_up(client, ALICE)
    created = [await create_item(client, alice, **fields) for fields in VARIETY]
    expected = {body["id"]: await _orm_shown(app, body["id"]) for body in created}

    # Pages of 4 cut through the items whose tags come on several rows.
    seen: list[dict[str, Any]] = []
    for offset in (0, 4):
        seen += (await list_page(client, alice, sort=sort, limit=4, offset=offset))["items"]

    assert seen == [expected[body["id"]] for body in seen]
    assert [body["id"] for body in seen] == await _database_order(app, sort)


async def _database_order(app: FastAPI, sort: str) -> list[str]:
    # The database's own order (its collation for titles), by the items table alone.
    column = {"created_at": Item.created_at, "title": Item.title, "price": Item.price_units}
    by = column[sort.removeprefix("-")]
    order = (by.desc(), Item.id.desc()) if sort.startswith("-") else (by.asc(), Item.id.asc())
    async with factory(app)() as session:
        return [str(row) for row in await session.scalars(select(Item.id).order_by(*order))]


async def test_filtered_and_cursor_pages_show_the_same_views(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    created = [await create_item(client, alice, **fields) for fields in VARIETY]
    expected = {body["id"]: await _orm_shown(app, body["id"]) for body in created}

    tagged = (await list_page(client, alice, tag="a"))["items"]
    assert tagged == [expected[body["id"]] for body in tagged]
    assert {body["title"] for body in tagged} == {"Zebra", "alpha", "Beta"}

    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 1, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
        page = await list_page(client, alice, **params)
        walked += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == [expected[body["id"]] for body in created]


async def test_the_service_page_matches_the_api(app: FastAPI, client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    for fields in VARIETY:
        await create_item(client, alice, **fields)
    owner = uuid.UUID((await client.get("/api/v1/users/me", headers=alice)).json()["id"])

    async with factory(app)() as session:
        page, total, cursor = await items_service.list_items(
            session=session, query=ItemQuery(limit=50), owner_id=owner
        )

    assert (total, cursor) == (len(VARIETY), None)
    listed = (await client.get(ITEMS, headers=alice)).json()["items"]
    assert [item.model_dump(mode="json") for item in page] == listed
