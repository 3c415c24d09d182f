"""Who may do what with an item: another user learns nothing, a superuser may act on any
item, and API keys are held to their scopes.
"""

import uuid

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.harness import assert_problem as problem
from tests.identity import bearer, login, make_superuser, register, signed_up
from tests.items.helpers import (
    ADMIN,
    ALICE,
    BOB,
    ITEMS,
    KEYS,
    create_item,
    ids,
    item_etag,
    item_url,
    list_page,
    new_item,
    read_item,
)

pytestmark = pytest.mark.anyio


# --- another user ----------------------------------------------------------------------------


async def test_another_user_cannot_read_change_or_learn_of_an_item(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice, title="Secret plan", tags=["secret"])
    url = item_url(item["id"])
    etag = item_etag(item)
    unknown_id = str(uuid.uuid4())

    # The answer is the one for an id that does not exist: nothing tells the two apart.
    hidden = problem(await client.get(url, headers=bob), 404, "item_not_found")
    missing = problem(await client.get(item_url(unknown_id), headers=bob), 404, "item_not_found")
    for body, item_id in ((hidden, item["id"]), (missing, unknown_id)):
        for member in ("detail", "instance"):
            body[member] = body[member].replace(item_id, "<id>")
        del body["request_id"]
    assert hidden == missing
    problem(await client.get(url, headers={**bob, "If-None-Match": etag}), 404, "item_not_found")
    problem(await client.patch(url, json={"title": "mine"}, headers=bob), 404, "item_not_found")
    problem(
        await client.patch(url, json={"title": "mine"}, headers={**bob, "If-Match": etag}),
        404,
        "item_not_found",
    )
    problem(await client.delete(url, headers=bob), 404, "item_not_found")
    problem(await client.post(f"{url}/restore", headers=bob), 404, "item_not_found")
    for params in ({}, {"q": "secret"}, {"tag": "secret"}, {"status": "draft"}):
        page = await list_page(client, bob, **params)
        assert (page["items"], page["total"]) == ([], 0)

    assert await read_item(client, alice, item["id"]) == item  # untouched


async def test_another_user_cannot_restore_a_deleted_item(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    assert (await client.delete(url, headers=alice)).status_code == 204
    problem(await client.post(f"{url}/restore", headers=bob), 404, "item_not_found")
    problem(await client.get(url, headers=alice), 404, "item_not_found")


async def test_a_superuser_may_read_and_change_any_item(app: FastAPI, client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    await register(client, ADMIN)
    await make_superuser(app, ADMIN)
    admin = bearer(await login(client, ADMIN))
    item = await create_item(client, alice)
    url = item_url(item["id"])
    assert (await read_item(client, admin, item["id"]))["owner_id"] == item["owner_id"]
    patched = await client.patch(url, json={"status": "active"}, headers=admin)
    assert patched.status_code == 200
    assert patched.json()["owner_id"] == item["owner_id"]
    assert (await read_item(client, alice, item["id"]))["status"] == "active"


# --- scopes ----------------------------------------------------------------------------------


async def api_key_headers(
    client: AsyncClient, headers: dict[str, str], *scopes: str
) -> dict[str, str]:
    response = await client.post(
        KEYS, json={"name": "bot", "scopes": list(scopes)}, headers=headers
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_a_read_only_key_can_read_but_not_write(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    reader = await api_key_headers(client, alice, "items:read")

    assert (await read_item(client, reader, item["id"])) == item
    assert ids(await list_page(client, reader)) == [item["id"]]
    problem(await client.post(ITEMS, json=new_item(), headers=reader), 403, "insufficient_scope")
    problem(await client.patch(url, json={"title": "x"}, headers=reader), 403, "insufficient_scope")
    problem(await client.delete(url, headers=reader), 403, "insufficient_scope")
    problem(await client.post(f"{url}/restore", headers=reader), 403, "insufficient_scope")
    assert await read_item(client, alice, item["id"]) == item
    assert (await list_page(client, alice))["total"] == 1


async def test_a_write_only_key_can_write_but_not_read(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    writer = await api_key_headers(client, alice, "items:write")
    item = await create_item(client, writer)
    problem(await client.get(item_url(item["id"]), headers=writer), 403, "insufficient_scope")
    problem(await client.get(ITEMS, headers=writer), 403, "insufficient_scope")
    assert (await read_item(client, alice, item["id"]))["title"] == "Desk lamp"


async def test_a_key_without_item_scopes_can_do_nothing(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice)
    other = await api_key_headers(client, alice, "users:read")
    problem(await client.get(item_url(item["id"]), headers=other), 403, "insufficient_scope")
    problem(await client.post(ITEMS, json=new_item(), headers=other), 403, "insufficient_scope")
