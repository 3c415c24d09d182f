"""Deleting items over the real app and databases: a soft delete that hides, and restore."""

import uuid

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.items.models import Item
from tests.harness import assert_problem as problem
from tests.harness import factory
from tests.identity import signed_up
from tests.items.helpers import ALICE, create_item, ids, item_url, list_page, read_item

pytestmark = pytest.mark.anyio


# --- soft delete and restore -----------------------------------------------------------------


async def test_delete_is_soft_and_hides_the_item_from_every_read(
    app: FastAPI, client: AsyncClient
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["gone"])
    kept = await create_item(client, headers, title="kept", tags=["gone"])
    url = item_url(item["id"])

    response = await client.delete(url, headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await client.get(url, headers=headers), 404, "item_not_found")
    page = await list_page(client, headers)
    assert (ids(page), page["total"]) == ([kept["id"]], 1)
    assert ids(await list_page(client, headers, tag="gone")) == [kept["id"]]
    problem(await client.patch(url, json={"title": "x"}, headers=headers), 404, "item_not_found")
    problem(await client.delete(url, headers=headers), 404, "item_not_found")
    # The row is kept, marked deleted, for restore.
    async with factory(app)() as session:
        row = await session.get(Item, uuid.UUID(item["id"]))
        assert row is not None
        assert row.deleted_at is not None


async def test_restore_brings_a_deleted_item_back(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["t"])
    url = item_url(item["id"])
    assert (await client.delete(url, headers=headers)).status_code == 204

    response = await client.post(f"{url}/restore", headers=headers)

    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == 3  # created, deleted, restored
    assert response.headers["etag"] == '"3"'
    assert (restored["title"], restored["tags"], restored["price"]) == ("Desk lamp", ["t"], "19.90")
    assert await read_item(client, headers, item["id"]) == restored
    assert ids(await list_page(client, headers)) == [item["id"]]
    # Restoring a live item changes nothing.
    again = await client.post(f"{url}/restore", headers=headers)
    assert again.status_code == 200
    assert again.json() == restored


async def test_restore_of_an_unknown_item_is_404(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(f"{item_url(uuid.uuid4())}/restore", headers=headers)
    problem(response, 404, "item_not_found")
