"""Login throttling through the real app, with the database store and with Redis.

The throttle's own unit tests are in test_throttle.py.
"""

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.auth.models import LoginFailure
from app.core.config import Settings
from app.deps import resources_of
from app.users.models import User
from tests.auth.helpers import (
    LEGACY_LOGIN,
    LOGIN,
    assert_unauthorized,
    login_response,
    started,
    throttle_scope,
)
from tests.harness import assert_problem, factory
from tests.identity import DEFAULT_PASSWORD, register, unique_email

pytestmark = pytest.mark.anyio


# --- Login throttling ------------------------------------------------------------------------


async def exhaust(client: AsyncClient, email: str, attempts: int) -> None:
    for _ in range(attempts):
        response = await login_response(client, email, "not the password")
        assert_unauthorized(response, "invalid_credentials")


async def assert_throttled(client: AsyncClient, email: str, window: int) -> None:
    """Every attempt for `email` is refused now, with the right password as with a wrong one."""
    for password in (DEFAULT_PASSWORD, "not the password"):
        response = await login_response(client, email, password)
        body = assert_problem(response, 429, "rate_limited")
        assert "access_token" not in response.text
        assert body["instance"] == LOGIN
        retry_after = int(response.headers["retry-after"])
        assert window - 60 <= retry_after <= window


async def failures_stored(app: FastAPI, email: str) -> int:
    """How many failed logins of `email` the database throttle holds."""
    async with factory(app)() as session:
        query = select(func.count()).select_from(LoginFailure).where(LoginFailure.email == email)
        return await session.scalar(query) or 0


async def throttle_scope_of(app: FastAPI, email: str) -> str:
    """What the throttle's Redis keys of `email` and the user registered with it name."""
    async with factory(app)() as session:
        user_id = await session.scalar(select(User.id).where(User.email == email))
    return throttle_scope(email, user_id)


def throttle_emails() -> dict[str, str]:
    return {name: unique_email(name) for name in ("blocked", "bystander", "cleared", "ghost")}


async def check_throttle(app: FastAPI, client: AsyncClient, emails: dict[str, str]) -> None:
    """The behaviour both stores share."""
    settings: Settings = resources_of(app).settings
    limit, window = settings.auth.login_max_attempts, settings.auth.login_window_seconds
    assert limit == 5  # the default
    blocked, bystander, cleared = emails["blocked"], emails["bystander"], emails["cleared"]
    for email in (blocked, bystander, cleared):
        await register(client, email)

    # A success forgets earlier failures: limit - 1 failures, twice, never block.
    await exhaust(client, cleared, limit - 1)
    assert (await login_response(client, cleared)).status_code == 200
    await exhaust(client, cleared, limit - 1)
    assert (await login_response(client, cleared)).status_code == 200

    await exhaust(client, blocked, limit)
    await assert_throttled(client, blocked, window)
    # The key is the normalised email, so another spelling is blocked too.
    upper = await login_response(client, blocked.upper())
    assert_problem(upper, 429, "rate_limited")
    # Other accounts are unaffected.
    ok = await login_response(client, bystander)
    assert ok.status_code == 200, ok.text
    # Unknown emails are throttled the same way: nothing reveals whether an account exists.
    ghost = emails["ghost"]
    await exhaust(client, ghost, limit)
    await assert_throttled(client, ghost, window)
    # The legacy path shares the counter.
    legacy = await login_response(client, blocked, path=LEGACY_LOGIN)
    assert_problem(legacy, 429, "rate_limited")


async def test_login_throttle_with_the_database_store(app: FastAPI, client: AsyncClient) -> None:
    assert resources_of(app).redis is None
    emails = throttle_emails()
    await check_throttle(app, client, emails)
    blocked = emails["blocked"]
    # The failures are rows in the database: they survived the 401s' rolled-back requests.
    assert await failures_stored(app, blocked) == resources_of(app).settings.auth.login_max_attempts
    assert await failures_stored(app, emails["cleared"]) == 0  # a success deleted them


async def test_login_throttle_with_the_redis_store(
    settings: Settings, redis_url_or_skip: str
) -> None:
    async with started(settings, REDIS_URL=redis_url_or_skip) as (app, client):
        redis = resources_of(app).redis
        assert redis is not None
        emails = throttle_emails()
        blocked = emails["blocked"]
        try:
            await check_throttle(app, client, emails)
            scopes = {name: await throttle_scope_of(app, email) for name, email in emails.items()}
            keys = {name: f"login-failures:{scope}" for name, scope in scopes.items()}
            limit = resources_of(app).settings.auth.login_max_attempts
            assert await redis.zcard(keys["blocked"]) == limit
            assert await redis.zcard(keys["ghost"]) == limit
            assert not await redis.exists(keys["cleared"])  # a success deleted its failures
            assert await failures_stored(app, blocked) == 0  # nothing went to the database
        finally:
            left = []  # every client's failures, and the known clients
            for email in emails.values():
                scope = await throttle_scope_of(app, email)
                for pattern in (f"login-failures:{scope}*", f"login-failures:known:{scope}"):
                    left += [key async for key in redis.scan_iter(match=pattern)]
            if left:
                await redis.delete(*left)


async def test_the_addresses_of_one_ipv6_network_are_one_client(app: FastAPI) -> None:
    # A subscriber holds a whole /64: a fresh address for each guess is still the same client.
    email = unique_email("ipv6")
    addresses = ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9")
    for address in addresses:
        transport = ASGITransport(app=app, client=(address, 4711))
        async with AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert_unauthorized(await login_response(c, email, "wrong"), "invalid_credentials")
    async with factory(app)() as session:
        query = select(LoginFailure.client).where(LoginFailure.email == email)
        clients = list(await session.scalars(query))
    assert clients == ["2001:db8:1:2::/64"] * len(addresses)
