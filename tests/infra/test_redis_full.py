"""A Redis that is full (`maxmemory` with `noeviction`) refuses every write but answers reads
and pings. Each use of Redis falls back as documented (docs/resilience.md): nothing answers
500, and what a request was told it did is in the database."""

from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select

from app.core.config import Settings
from app.jobs.models import Job
from tests.harness import factory, started
from tests.identity import DEFAULT_PASSWORD, signed_up, unique_email
from tests.items.helpers import ITEMS, new_item
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio


def fill(redis_server: RedisServer) -> None:
    admin = Redis.from_url(redis_server.url)
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # below what Redis already uses: every write refused
    finally:
        admin.close()


@pytest.mark.parametrize("fail_open", ["true", "false"], ids=["fail-open", "fail-closed"])
async def test_a_full_redis_costs_no_request(
    settings: Settings, redis_server: RedisServer, fail_open: str
) -> None:
    redis_settings: dict[str, Any] = {
        "REDIS_URL": redis_server.url,
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_FAIL_OPEN": fail_open,
        "JOBS_EAGER": False,  # the export goes to the broker, which is Redis here
    }
    async with started(settings, **redis_settings) as (app, client):
        email = unique_email("full")
        headers = await signed_up(client, email)
        fill(redis_server)
        wrong = {"username": email, "password": "not the password"}
        right = {"username": email, "password": DEFAULT_PASSWORD}
        keyed = {**headers, "Idempotency-Key": "full-redis-0001"}
        statuses = {
            "login_failed": (await client.post("/api/v1/auth/login", data=wrong)).status_code,
            "login": (await client.post("/api/v1/auth/login", data=right)).status_code,
            "create": (await client.post(ITEMS, json=new_item(), headers=keyed)).status_code,
            "replay": (await client.post(ITEMS, json=new_item(), headers=keyed)).status_code,
            "export": (await client.post("/api/v1/users/me/export", headers=headers)).status_code,
            "me": (await client.get("/api/v1/users/me", headers=headers)).status_code,
        }
        ready = (await client.get("/api/v1/health/ready")).json()
        async with factory(app)() as session:
            jobs = await session.scalar(select(func.count()).select_from(Job))
    assert statuses == {
        "login_failed": 401,
        "login": 200,
        "create": 201,
        "replay": 201,  # the same item again: the database keeps the key without the lock
        "export": 202,
        "me": 200,
    }
    assert jobs == 1  # refused by the broker, kept for the dispatcher
    assert ready["status"] == "ok"  # Redis answers its ping when full
