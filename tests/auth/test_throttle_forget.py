"""Forgetting an address: each login-throttle store drops its failures and known clients, only its.

The same behaviour runs on the database store (SQLite and PostgreSQL) and on Redis; then what
each keeps in its own form, and the fallback wrapper, which forgets in the database always and
in Redis only while Redis answers.
"""

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Protocol

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure, LoginKnownClient
from app.auth.throttle import (
    DatabaseLoginThrottle,
    FallbackLoginThrottle,
    LoginThrottle,
    RedisLoginThrottle,
    ThrottleRules,
)
from app.core.errors import RateLimitedError
from app.deps import resources_of
from tests.harness import log_lines

pytestmark = pytest.mark.anyio

EMAIL = "old-owner@example.com"
OTHER = "bystander@example.com"
OWNER = "203.0.113.50"  # logged in to both addresses, then failed once: known to each
STRANGER = "198.51.100.7"  # failed once at each address, which put it in its delay
NEWCOMER = "203.0.113.77"
RULES = ThrottleRules(
    max_attempts=2, window_seconds=60, max_delay_seconds=8, known_client_seconds=3600
)
# Every step at one instant: the account's delay never runs out while a test looks at it.
NOW = float(int(time.time()))
ACCOUNT = uuid.UUID(int=1)  # the user holding each address here


class Make(Protocol):
    """Builds a throttle for `client` on the store under test."""

    def __call__(self, client: str) -> LoginThrottle: ...


async def refused(throttle: LoginThrottle, email: str) -> int:
    """Assert that an attempt at `email` is refused now; return its Retry-After."""
    with pytest.raises(RateLimitedError) as info:
        await throttle.reserve(email, ACCOUNT)
    return int(info.value.headers["Retry-After"])


async def known_and_failed(make: Make, email: str) -> None:
    """The owner logged in, then failed; the stranger's failure put the account in its delay."""
    owner = make(OWNER)
    await owner.reserve(email, ACCOUNT)
    await owner.clear(email, ACCOUNT)
    await owner.reserve(email, ACCOUNT)
    await make(STRANGER).reserve(email, ACCOUNT)
    assert await refused(make(NEWCOMER), email) == 1


class ForgetBehaviour:
    """What `forget` does on every store; subclasses provide the `make` fixture."""

    async def test_forget_drops_every_failure_and_known_client_of_that_email_only(
        self, make: Make
    ) -> None:
        for email in (EMAIL, OTHER):
            await known_and_failed(make, email)
        await make(NEWCOMER).forget(EMAIL, ACCOUNT)  # the client of the throttle does not matter

        # The email starts afresh: no failure counts, and the owner is a stranger to it.
        for _ in range(RULES.max_attempts):
            await make(STRANGER).reserve(EMAIL, ACCOUNT)  # the account's delay no longer holds it
        assert await refused(make(OWNER), EMAIL) == 1  # the account's delay, like anyone
        assert await refused(make(STRANGER), EMAIL) == RULES.window_seconds

        # The other email keeps both: its delay holds the stranger, not the known owner.
        assert await refused(make(STRANGER), OTHER) == 1
        await make(OWNER).reserve(OTHER, ACCOUNT)

    async def test_forgetting_an_address_with_no_state_does_nothing(self, make: Make) -> None:
        await known_and_failed(make, OTHER)
        await make(OWNER).forget(EMAIL, ACCOUNT)
        assert await refused(make(NEWCOMER), OTHER) == 1  # its failures still count
        await make(OWNER).reserve(OTHER, ACCOUNT)  # still known there


@pytest.fixture
async def session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with resources_of(app).session_factory() as session:
        yield session


def database_store(session: AsyncSession, client: str) -> DatabaseLoginThrottle:
    moment = datetime.fromtimestamp(NOW, UTC)
    return DatabaseLoginThrottle(session, client=client, rules=RULES, now=lambda: moment)


async def rows(session: AsyncSession, email: str) -> tuple[int, int]:
    """How many failures and known clients of `email` the database holds."""
    counts = []
    for model in (LoginFailure, LoginKnownClient):
        query = select(func.count()).select_from(model).where(model.email == email)
        counts.append(await session.scalar(query) or 0)
    return counts[0], counts[1]


class TestDatabaseForget(ForgetBehaviour):
    @pytest.fixture
    def make(self, session: AsyncSession) -> Make:
        return lambda client: database_store(session, client)

    async def test_forget_deletes_the_rows_of_that_email(
        self, make: Make, session: AsyncSession
    ) -> None:
        for email in (EMAIL, OTHER):
            await known_and_failed(make, email)
        assert await rows(session, EMAIL) == (2, 1)
        await make(OWNER).forget(EMAIL, ACCOUNT)
        assert await rows(session, EMAIL) == (0, 0)
        assert await rows(session, OTHER) == (2, 1)


def redis_store(redis: Redis, prefix: str, client: str) -> RedisLoginThrottle:
    return RedisLoginThrottle(redis, client=client, rules=RULES, now=lambda: NOW, prefix=prefix)


async def keys_of(redis: Redis, prefix: str) -> set[bytes]:
    return {key async for key in redis.scan_iter(match=prefix + "*")}


class TestRedisForget(ForgetBehaviour):
    @pytest.fixture
    def make(self, redis: Redis, prefix: str) -> Make:
        return lambda client: redis_store(redis, prefix, client)

    async def test_forget_deletes_every_key_of_that_email(
        self, make: Make, redis: Redis, prefix: str
    ) -> None:
        await known_and_failed(make, OTHER)
        others = await keys_of(redis, prefix)
        await known_and_failed(make, EMAIL)
        # The account's failures, the owner's and the stranger's, the known clients.
        assert len(await keys_of(redis, prefix) - others) == 4
        await make(OWNER).forget(EMAIL, ACCOUNT)
        assert await keys_of(redis, prefix) == others


class TestFallbackForget:
    """The database holds what was counted while Redis was down: both stores forget."""

    async def test_both_stores_forget(
        self, session: AsyncSession, redis: Redis, prefix: str
    ) -> None:
        await known_and_failed(lambda client: database_store(session, client), EMAIL)
        await known_and_failed(lambda client: redis_store(redis, prefix, client), EMAIL)
        both = FallbackLoginThrottle(
            redis_store(redis, prefix, OWNER), database_store(session, OWNER)
        )
        with log_lines() as logs:
            await both.forget(EMAIL, ACCOUNT)
        assert await rows(session, EMAIL) == (0, 0)
        assert await keys_of(redis, prefix) == set()
        assert logs.events("login_throttle_forget_failed") == []

    async def test_a_redis_that_is_down_is_logged_and_the_database_still_forgets(
        self, session: AsyncSession, closed_port: int
    ) -> None:
        await known_and_failed(lambda client: database_store(session, client), EMAIL)
        dead = Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=1)
        try:
            both = FallbackLoginThrottle(
                redis_store(dead, "unused:", OWNER), database_store(session, OWNER)
            )
            with log_lines() as logs:
                await both.forget(EMAIL, ACCOUNT)
        finally:
            await dead.aclose()
        assert await rows(session, EMAIL) == (0, 0)
        [line] = logs.events("login_throttle_forget_failed")
        assert line["error"] == "ConnectionError"
