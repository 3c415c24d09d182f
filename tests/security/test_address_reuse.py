"""Attack: register an address its account left, and find the old owner's clients known to it.

A client that logged in to an account is known to its email: it skips the account-wide delay
that strangers' failures keep running. Once the account is deleted (by its owner or by a
superuser) or moves to another email, whoever registers the address next must not inherit
that: the old owner's address waits out the new account's delay like any stranger's. With
Redis down, the change still goes through, and the database forgets what it counted.
"""

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from redis.asyncio import Redis

from app.auth import action_tokens
from app.auth.throttle import DatabaseLoginThrottle
from app.auth.throttle_redis import RedisLoginThrottle
from app.core.config import Settings
from app.db.base import utcnow
from app.users.models import User
from tests.harness import factory, started
from tests.identity import (
    DEFAULT_PASSWORD,
    bearer,
    login,
    make_superuser,
    register,
    unique_email,
)
from tests.security.helpers import Store

pytestmark = pytest.mark.anyio

USERS = "/api/v1/users"
LIMIT = 2  # LOGIN_MAX_ATTEMPTS: two strangers' failures put the account in its delay
OLD_OWNER = "203.0.113.10"
NEWCOMER = "203.0.113.77"


@pytest.fixture(autouse=True)
def throttle_clock_stands_still(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both throttle stores read one fixed instant: the account's delay (1 s after the newest
    failure) never runs out, however long a busy host stalls between a failure and the next
    login, so a 429 expected during it cannot turn into a 200.
    """
    moment = utcnow()
    clocks = ((DatabaseLoginThrottle, lambda: moment), (RedisLoginThrottle, moment.timestamp))
    for throttle, clock in clocks:
        defaults = throttle.__init__.__kwdefaults__
        assert defaults is not None
        assert "now" in defaults
        monkeypatch.setitem(defaults, "now", clock)


NEW_PASSWORD = "the new owner's passphrase"


@asynccontextmanager
async def from_address(app: FastAPI, host: str) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=(host, 4000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login_from(app: FastAPI, host: str, email: str, password: str) -> int:
    async with from_address(app, host) as client:
        answer = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": password}
        )
    return answer.status_code


async def strangers_fail(app: FastAPI, email: str, first: int) -> None:
    """One wrong password from each of `LIMIT` fresh addresses: the account is in its delay."""
    for n in range(first, first + LIMIT):
        assert await login_from(app, f"192.0.2.{n}", email, "a guess") == 401


@dataclass(frozen=True)
class Account:
    """The account that leaves its address, logged in from the old owner's address."""

    app: FastAPI
    client: AsyncClient
    email: str
    id: str
    headers: dict[str, str]


Leave = Callable[[Account], Awaitable[None]]
PROOF = {"current_password": DEFAULT_PASSWORD}


async def deleted_by_its_owner(account: Account) -> None:
    deleted = await account.client.request(
        "DELETE", f"{USERS}/me", json=PROOF, headers=account.headers
    )
    assert deleted.status_code == 204, deleted.text


async def deleted_by_a_superuser(account: Account) -> None:
    admin = unique_email("admin")
    await register(account.client, admin)
    await make_superuser(account.app, admin)
    headers = bearer(await login(account.client, admin))
    path = f"{USERS}/{account.id}"
    deleted = await account.client.request("DELETE", path, json=PROOF, headers=headers)
    assert deleted.status_code == 204, deleted.text


async def moved_to_another_email(account: Account) -> None:
    new_email = unique_email("moved")
    asked = await account.client.post(
        f"{USERS}/me/email", json={"email": new_email, **PROOF}, headers=account.headers
    )
    assert asked.status_code == 202, asked.text
    # The mailed token goes through the job broker, Redis with some stores: a token of the
    # same flow is issued here instead (it voids the mailed one).
    async with factory(account.app)() as session:
        user = await session.get(User, uuid.UUID(account.id))
        assert user is not None
        token = await action_tokens.start_email_change(
            session=session, user=user, new_email=new_email, ttl_seconds=3600
        )
        await session.commit()
    confirmed = await account.client.post(
        "/api/v1/auth/email-change/confirm", json={"token": token}
    )
    assert confirmed.status_code == 204, confirmed.text


LEAVES: dict[str, Leave] = {
    "self-deletion": deleted_by_its_owner,
    "admin-deletion": deleted_by_a_superuser,
    "email-change": moved_to_another_email,
}


async def forget_keys(url: str, email: str) -> None:
    """Delete what Redis holds for `email` (the default prefix is shared with other tests)."""
    redis = Redis.from_url(url)
    try:
        digest = hashlib.sha256(email.encode()).hexdigest()
        keys = [key async for key in redis.scan_iter(match=f"login-failures:*{digest}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("leave", list(LEAVES), ids=list(LEAVES))
async def test_the_old_owners_client_is_a_stranger_to_the_next_account(
    settings: Settings, store: Store, leave: str
) -> None:
    email = unique_email("reused")
    async with started(settings, LOGIN_MAX_ATTEMPTS=LIMIT, **store.settings) as (app, client):
        try:
            user = await register(client, email)
            async with from_address(app, OLD_OWNER) as owner:
                headers = bearer(await login(owner, email))
                # Known: the owner's address is let through the delay a newcomer waits.
                await strangers_fail(app, email, first=0)
                assert await login_from(app, NEWCOMER, email, DEFAULT_PASSWORD) == 429
                assert await login_from(app, OLD_OWNER, email, DEFAULT_PASSWORD) == 200
                await LEAVES[leave](Account(app, owner, email, user["id"], headers))

            # The next account at the address: the old owner's address waits like a newcomer,
            # with the right password too.
            await register(client, email, NEW_PASSWORD)
            await strangers_fail(app, email, first=10)
            assert await login_from(app, OLD_OWNER, email, NEW_PASSWORD) == 429
            assert await login_from(app, NEWCOMER, email, NEW_PASSWORD) == 429
        finally:
            if store.redis is not None:
                await forget_keys(store.redis, email)
