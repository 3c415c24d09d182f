"""The item read-through cache, memory and Redis: filled by reads, invalidated by every
write, and never a way around whose item it is.
"""

import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import update

from app.core.config import Settings
from app.deps import resources_of
from app.items.models import Item
from tests.harness import assert_problem as problem
from tests.harness import factory, started
from tests.identity import bearer, login, make_superuser, register, signed_up, unique_email
from tests.items.helpers import ALICE, BOB, create_item, item_etag, item_url, read_item

pytestmark = pytest.mark.anyio


# --- the read-through cache ------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def cached_app(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app with the memory cache or, with its own key prefix, the Redis cache."""
    if request.param == "memory":
        async with started(settings) as started_app:
            assert resources_of(started_app[0]).redis is None
            yield started_app
        return
    redis_url = request.getfixturevalue("redis_url_or_skip")
    app_name = f"items-test-{uuid.uuid4().hex[:12]}"
    async with started(settings, REDIS_URL=redis_url, APP_NAME=app_name) as started_app:
        redis = resources_of(started_app[0]).redis
        assert redis is not None
        try:
            yield started_app
        finally:
            keys = [key async for key in redis.scan_iter(match=f"cache:{app_name}:*")]
            if keys:
                await redis.delete(*keys)


async def cached_copy(app: FastAPI, item_id: str) -> bytes | None:
    value: bytes | None = await resources_of(app).cache.get(f"items:{item_id}")
    return value


async def test_a_read_is_cached_and_every_write_invalidates_it(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["a"])
    item_id = item["id"]
    url = item_url(item_id)

    first = await read_item(client, headers, item_id)
    assert await cached_copy(app, item_id) is not None
    # Read-through: a change behind the API's back is not seen while the copy is cached.
    async with factory(app)() as session:
        await session.execute(
            update(Item).where(Item.id == uuid.UUID(item_id)).values(title="behind the back")
        )
        await session.commit()
    assert await read_item(client, headers, item_id) == first

    patched = await client.patch(url, json={"title": "patched"}, headers=headers)
    assert patched.status_code == 200
    assert await read_item(client, headers, item_id) == patched.json()

    assert (await client.delete(url, headers=headers)).status_code == 204
    problem(await client.get(url, headers=headers), 404, "item_not_found")
    assert await cached_copy(app, item_id) is None  # a 404 is not cached

    restored = await client.post(f"{url}/restore", headers=headers)
    assert restored.status_code == 200
    assert await read_item(client, headers, item_id) == restored.json()
    assert (await read_item(client, headers, item_id))["version"] == 4


async def test_a_cached_read_is_the_same_as_an_uncached_one(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, price="12345678901234.5678", tags=["x", "y"])
    uncached = await client.get(item_url(item["id"]), headers=headers)
    assert await cached_copy(app, item["id"]) is not None
    cached = await client.get(item_url(item["id"]), headers=headers)
    assert cached.content == uncached.content
    assert cached.headers["etag"] == uncached.headers["etag"]
    revalidated = await client.get(
        item_url(item["id"]), headers={**headers, "If-None-Match": uncached.headers["etag"]}
    )
    assert revalidated.status_code == 304


async def test_a_cached_item_is_still_hidden_from_another_user(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    await read_item(client, alice, item["id"])
    assert await cached_copy(app, item["id"]) is not None

    problem(await client.get(url, headers=bob), 404, "item_not_found")
    problem(
        await client.get(url, headers={**bob, "If-None-Match": item_etag(item)}),
        404,
        "item_not_found",
    )
    # Bob's miss did not replace the owner's copy or evict it.
    assert await read_item(client, alice, item["id"]) == item


async def test_another_users_read_does_not_fill_the_cache(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    problem(await client.get(item_url(item["id"]), headers=bob), 404, "item_not_found")
    assert await cached_copy(app, item["id"]) is None


@pytest.mark.parametrize("deleted_by", ["owner", "superuser"])
async def test_deleting_an_account_drops_its_cached_items(
    cached_app: tuple[FastAPI, AsyncClient], deleted_by: str
) -> None:
    # Its rows go with the account (ON DELETE CASCADE); a cached copy must not outlive them.
    app, client = cached_app
    owner_email, admin_email = unique_email("owner"), unique_email("admin")
    owner = await signed_up(client, owner_email)
    await register(client, admin_email)
    await make_superuser(app, admin_email)
    admin = bearer(await login(client, admin_email))
    kept = await create_item(client, admin)
    items = [await create_item(client, owner) for _ in range(2)]
    for item in [*items, kept]:
        await read_item(client, admin, item["id"])  # a superuser's read fills the cache too
        assert await cached_copy(app, item["id"]) is not None

    me = (await client.get("/api/v1/users/me", headers=owner)).json()
    if deleted_by == "owner":
        deleted = await client.request("DELETE", "/api/v1/users/me", headers=owner)
    else:
        deleted = await client.request("DELETE", f"/api/v1/users/{me['id']}", headers=admin)
    assert deleted.status_code == 204

    for item in items:
        problem(await client.get(item_url(item["id"]), headers=admin), 404, "item_not_found")
        assert await cached_copy(app, item["id"]) is None
    assert await cached_copy(app, kept["id"]) is not None  # others' items stay cached
