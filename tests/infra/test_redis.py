from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.deps import RedisDep
from app.main import create_app
from tests.harness import client_for, make_settings, running

pytestmark = pytest.mark.anyio


def add_counter_route(app: FastAPI) -> None:
    @app.post("/counter")
    async def increment(redis: RedisDep) -> dict[str, int]:
        return {"value": int(await redis.incr("test:counter"))}


async def started(settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(settings)
    add_counter_route(app)
    async with running(app), client_for(app) as client:
        yield client


async def test_routes_needing_redis_answer_503_without_it(settings: Settings) -> None:
    async for client in started(settings):
        response = await client.post("/counter")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
    assert "REDIS_URL" in response.json()["detail"]


async def test_routes_get_the_shared_client(settings: Settings, redis_url_or_skip: str) -> None:
    with_redis = make_settings(DATABASE_URL=settings.database.url, REDIS_URL=redis_url_or_skip)
    async for client in started(with_redis):
        await client.post("/counter")  # whatever an earlier run left, the next one is +1
        first = (await client.post("/counter")).json()["value"]
        second = (await client.post("/counter")).json()["value"]
    assert second == first + 1
