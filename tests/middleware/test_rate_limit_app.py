"""Rate limiting in the real app: installed only when enabled, the burst, login per address,
and tokens keyed by their user.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.main import create_app
from app.middleware.rate_limit import RateLimitMiddleware
from tests.harness import PROBLEM, make_settings, started
from tests.middleware.rate_limit_apps import seconds, token
from tests.migrations import migrate

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def database_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("rate-limit") / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(migrate(url, "head"))
    return url


@asynccontextmanager
async def real_app(database_url: str, **overrides: Any) -> AsyncIterator[AsyncClient]:
    settings = make_settings(DATABASE_URL=database_url)
    async with started(settings, RATE_LIMIT_ENABLED=True, **overrides) as (_, c):
        yield c


def stack_of(app: FastAPI) -> list[type]:
    return [entry.cls for entry in app.user_middleware]  # type: ignore[misc]


def test_the_real_app_installs_the_limiter_only_when_enabled(database_file: str) -> None:
    on = create_app(make_settings(DATABASE_URL=database_file, RATE_LIMIT_ENABLED=True))
    off = create_app(make_settings(DATABASE_URL=database_file))
    assert RateLimitMiddleware in stack_of(on)
    assert RateLimitMiddleware not in stack_of(off)


async def test_the_real_app_limits_api_routes_with_the_burst(database_file: str) -> None:
    async with real_app(database_file, RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_BURST=1) as c:
        responses = [await c.get("/api/v1/users/me") for _ in range(4)]
        health = [await c.get(path) for path in ("/health", "/api/v1/health/live")]
    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    assert responses[0].headers["ratelimit-policy"] == '"minute";q=3;w=60, "hour";q=1000;w=3600'
    refused = responses[-1]
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert seconds(refused.headers["retry-after"]) >= 1
    assert [r.status_code for r in health] == [200, 200]
    assert not any("ratelimit" in r.headers for r in health)


async def test_the_real_app_limits_login_per_address(database_file: str) -> None:
    form = {"username": "nobody@example.com", "password": "wrong password"}
    async with real_app(database_file, RATE_LIMIT_AUTH_PER_MINUTE=2) as c:
        statuses = [(await c.post("/api/v1/auth/login", data=form)).status_code for _ in range(2)]
        legacy = await c.post("/auth/login", data=form)
        reset = await c.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
        other = await c.get("/api/v1/users/me")
    assert statuses == [401, 401]
    assert legacy.status_code == 429  # one quota for every sensitive path
    assert legacy.headers["ratelimit-policy"] == '"auth";q=2;w=60'
    assert reset.status_code == 429
    assert other.status_code == 401


async def test_every_route_that_checks_a_password_shares_the_address_quota(
    database_file: str,
) -> None:
    # Keyed by user, guesses through each stolen session would get a quota of their own.
    settings = make_settings()
    proof = {"current_password": "a guess"}
    async with real_app(database_file, RATE_LIMIT_AUTH_PER_MINUTE=2, RATE_LIMIT_PER_MINUTE=50) as c:
        for _ in range(2):
            stolen = {"Authorization": token(settings, uuid.uuid4()).decode()}
            deletion = await c.request("DELETE", "/api/v1/users/me", json=proof, headers=stolen)
            assert deletion.headers["ratelimit-policy"] == '"auth";q=2;w=60'
        stolen = {"Authorization": token(settings, uuid.uuid4()).decode()}
        refused = await c.request("DELETE", "/api/v1/users/me", json=proof, headers=stolen)
        reading = await c.get("/api/v1/users/me", headers=stolen)
    assert refused.status_code == 429
    assert reading.headers["ratelimit-policy"].startswith('"minute";')


async def test_the_real_app_keys_a_token_by_its_user(database_file: str) -> None:
    settings = make_settings()
    headers = {"Authorization": token(settings, uuid.uuid4()).decode()}
    async with real_app(database_file, RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_BURST=0) as c:
        anonymous = [(await c.get("/api/v1/users/me")).status_code for _ in range(2)]
        user = [(await c.get("/api/v1/users/me", headers=headers)).status_code for _ in range(2)]
    assert anonymous == [401, 429]
    assert user == [401, 429]  # its own quota: the address's is spent
