"""Attack: lock the owner out by failing their logins. Strangers slow it, never lock it."""

import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.throttle import (
    DatabaseLoginThrottle,
    LoginThrottle,
    RedisLoginThrottle,
    ThrottleRules,
)
from app.core.errors import RateLimitedError
from app.deps import resources_of
from app.main import create_app
from tests.auth.helpers import throttle_scope
from tests.harness import client_for, make_settings, running
from tests.identity import DEFAULT_PASSWORD, register

pytestmark = pytest.mark.anyio

STRANGER = ("198.51.100.66", 4000)
OWNER = ("203.0.113.10", 5000)
NEWCOMER = ("203.0.113.77", 6000)
RULES = ThrottleRules(max_attempts=3, window_seconds=900, max_delay_seconds=8)
ACCOUNT = uuid.UUID(int=1)  # the user holding the address


@asynccontextmanager
async def from_address(app: FastAPI, address: tuple[str, int]) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=address)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def attempt(client: AsyncClient, email: str, password: str) -> Any:
    return await client.post("/api/v1/auth/login", data={"username": email, "password": password})


async def test_a_stranger_is_blocked_but_the_owner_still_gets_in(
    app: FastAPI, client: AsyncClient
) -> None:
    email = "owner@example.com"
    await register(client, email)
    limit = resources_of(app).settings.auth.login_max_attempts
    async with from_address(app, STRANGER) as stranger:
        statuses = [(await attempt(stranger, email, "guess")).status_code for _ in range(limit + 2)]
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}  # this address is done with this account

    async with from_address(app, OWNER) as owner:
        first = await attempt(owner, email, DEFAULT_PASSWORD)
        if first.status_code == 429:  # the account answers slowly: one short wait, not a lock
            wait = int(first.headers["retry-after"])
            assert wait <= resources_of(app).settings.auth.login_max_delay_seconds
            await anyio.sleep(wait)
            first = await attempt(owner, email, DEFAULT_PASSWORD)
    assert first.status_code == 200, first.text


async def test_the_owner_logs_in_while_strangers_keep_the_account_in_its_delay(
    database_url: str,
) -> None:
    email = "owner@example.com"
    settings = make_settings(DATABASE_URL=database_url, LOGIN_MAX_ATTEMPTS=2)
    attackers = [(f"192.0.2.{n}", 4000 + n) for n in range(6)]
    async with running(create_app(settings)) as app:
        async with client_for(app) as client:
            await register(client, email)
        async with from_address(app, OWNER) as owner:
            assert (await attempt(owner, email, DEFAULT_PASSWORD)).status_code == 200

        async def guess(n: int) -> None:
            """One wrong password from the nth address, sent as soon as the delay ends."""
            async with from_address(app, attackers[n % len(attackers)]) as stranger:
                answer = await attempt(stranger, email, "guess")
                if answer.status_code == 429:  # Retry-After is rounded up: then it is time
                    await anyio.sleep(int(answer.headers["retry-after"]))
                    answer = await attempt(stranger, email, "guess")
                assert answer.status_code == 401

        for n in range(2):  # the account's limit: from here it is always in its delay
            await guess(n)
        for n in range(2, 5):
            async with from_address(app, NEWCOMER) as newcomer:
                refused = await attempt(newcomer, email, DEFAULT_PASSWORD)
            assert refused.status_code == 429  # an address the owner never used waits
            assert int(refused.headers["retry-after"]) >= 1
            async with from_address(app, OWNER) as owner:
                answer = await attempt(owner, email, DEFAULT_PASSWORD)
            assert answer.status_code == 200, answer.text
            await guess(n)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def seconds(self) -> float:
        return self.now

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


async def refused_for(throttle: LoginThrottle, email: str) -> int:
    """Assert that an attempt is refused now; return its Retry-After (an attempt made counts)."""
    with pytest.raises(RateLimitedError) as info:
        await throttle.reserve(email, ACCOUNT)
    return int(info.value.headers["Retry-After"])


async def rule_cases(make: Any, clock: Clock, email: str) -> None:
    stranger, owner = make("198.51.100.66"), make("203.0.113.10")
    for _ in range(RULES.max_attempts):
        await stranger.reserve(email, ACCOUNT)  # allowed, and counted as failed
    # The stranger's address waits out the window; the owner only the account's first delay.
    assert await refused_for(stranger, email) == RULES.window_seconds
    assert await refused_for(owner, email) == 1
    clock.now += 1

    # Spread over many addresses, each failure doubles the account's delay, up to its cap.
    for n in range(6):
        await make(f"192.0.2.{n}").reserve(email, ACCOUNT)  # the delay before it has passed
        delay = min(2 ** (n + 1), RULES.max_delay_seconds)
        assert await refused_for(owner, email) == math.ceil(delay)
        clock.now += delay
    await owner.reserve(email, ACCOUNT)
    # The owner's success clears the owner's failures only: the stranger stays blocked.
    await owner.clear(email, ACCOUNT)
    assert await refused_for(stranger, email) > 0


async def test_the_rules_on_the_database(session_factory_for_rules: Any) -> None:
    clock = Clock()
    async with session_factory_for_rules() as session:
        assert isinstance(session, AsyncSession)

        def make(client: str) -> LoginThrottle:
            return DatabaseLoginThrottle(session, client=client, rules=RULES, now=clock.moment)

        await rule_cases(make, clock, "rules@example.com")


@pytest.mark.redis
async def test_the_rules_on_redis(redis_url_or_skip: str) -> None:
    clock = Clock()
    redis = Redis.from_url(redis_url_or_skip)
    email = f"rules-{datetime.now(UTC).timestamp()}@example.com"
    prefix = "test-login-failures:"

    def make(client: str) -> LoginThrottle:
        return RedisLoginThrottle(
            redis, client=client, rules=RULES, now=clock.seconds, prefix=prefix
        )

    try:
        await rule_cases(make, clock, email)
    finally:
        scope = throttle_scope(email, ACCOUNT)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*{scope}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
def session_factory_for_rules(app: FastAPI) -> Any:
    return resources_of(app).session_factory


def test_the_delay_is_capped_and_only_follows_failures() -> None:
    now = 5_000.0
    recent = [now - 1.0] * 20
    assert RULES.wait(now, [], recent, known=False) == RULES.max_delay_seconds - 1
    assert RULES.wait(now, [], [now - timedelta(hours=1).total_seconds()], known=False) == 0
    # A known client has no account delay; its own failures still hold it.
    assert RULES.wait(now, [], recent, known=True) == 0
    assert RULES.wait(now, recent, recent, known=True) == RULES.window_seconds - 1
