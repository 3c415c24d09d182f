import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.deps import RedisDep
from tests.harness import PROBLEM, started

pytestmark = pytest.mark.anyio


def add_counter_route(app: FastAPI) -> None:
    @app.post("/counter")
    async def increment(redis: RedisDep) -> dict[str, int]:
        return {"value": int(await redis.incr("test:counter"))}


async def test_routes_needing_redis_answer_503_without_it(settings: Settings) -> None:
    async with started(settings, add_counter_route) as (_, client):
        response = await client.post("/counter")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "service_unavailable"
    assert "REDIS_URL" in response.json()["detail"]


async def test_routes_get_the_shared_client(settings: Settings, redis_url_or_skip: str) -> None:
    async with started(settings, add_counter_route, REDIS_URL=redis_url_or_skip) as (_, client):
        await client.post("/counter")  # whatever an earlier run left, the next one is +1
        first = (await client.post("/counter")).json()["value"]
        second = (await client.post("/counter")).json()["value"]
    assert second == first + 1
