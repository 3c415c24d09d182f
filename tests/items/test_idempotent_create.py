"""50 concurrent POST /items with one Idempotency-Key: exactly one item, against real commits."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import Response
from sqlalchemy import delete, func, select

from app.deps import resources_of
from app.items.models import Item
from app.main import create_app
from app.users.models import User
from tests.harness import client_for, make_settings
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

REQUESTS = 50
EMAIL = "items-idempotent@example.com"
BODY = {"title": "Once", "price": "19.90", "currency": "EUR", "tags": ["a"]}


@pytest.fixture
async def live_app(live_database_url: str) -> AsyncIterator[FastAPI]:
    """The app on a migrated database with real commits."""
    app = create_app(make_settings(DATABASE_URL=live_database_url))
    async with LifespanManager(app):
        try:
            yield app
        finally:
            async with resources_of(app).engine.begin() as connection:
                await connection.execute(delete(User).where(User.email == EMAIL))  # cascades


async def test_fifty_concurrent_creates_with_one_key_make_one_item(live_app: FastAPI) -> None:
    async with client_for(live_app) as client:
        headers = {**await signed_up(client, EMAIL), "Idempotency-Key": str(uuid.uuid4())}

        async def create() -> Response:
            return await client.post("/api/v1/items", json=BODY, headers=headers)

        responses = await asyncio.wait_for(asyncio.gather(*(create() for _ in range(REQUESTS))), 60)
        replay = await create()

    created = [r for r in responses if r.status_code == 201]
    assert created, "one request created the item"
    assert all(r.status_code in (201, 409) for r in responses), [r.status_code for r in responses]
    assert {r.json()["id"] for r in created} == {replay.json()["id"]}
    assert {r.headers["location"] for r in created} == {replay.headers["location"]}
    assert all(
        r.json()["code"] == "idempotency_key_in_progress" for r in responses if r.status_code == 409
    )
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    async with resources_of(live_app).session_factory() as session:
        owned = select(func.count()).select_from(Item).join(User).where(User.email == EMAIL)
        assert await session.scalar(owned) == 1
