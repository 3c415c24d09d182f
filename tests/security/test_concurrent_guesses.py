"""Attack: send many password guesses at once, so they all pass the throttle before any failed.

Every path that checks a password (a login, the `current_password` of a sensitive change) must
count a guess before checking it, in the step that checks the limit. Here the password checks
wait until every guess is either being checked or answered, so no guess can fail (and be
counted the old way) before the others passed the throttle: the widest race, every time. The
app runs as in production (separate connections, real commits) on PostgreSQL and SQLite,
counting in the database, in Redis, and in the database while Redis is down.
"""

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient, Response
from redis.asyncio import Redis

from app.core.security import PasswordHasher
from app.deps import attach_resources, resources_of
from app.main import create_app
from tests.auth.helpers import throttle_key
from tests.harness import assert_problem, make_settings
from tests.identity import DEFAULT_PASSWORD, bearer, login, register, unique_email
from tests.security.helpers import Store

pytestmark = pytest.mark.anyio

LIMIT = 5  # LOGIN_MAX_ATTEMPTS's default
GUESSES = 3 * LIMIT
ATTACKER = "198.51.100.7"
SETTLE_SECONDS = 30


class HeldHasher(PasswordHasher):
    """The app's hasher, whose password checks wait until the test lets them go."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real = real
        self.checking = 0
        self.progress = asyncio.Event()  # set on each check begun, and on each answer
        self.release = asyncio.Event()

    async def hash(self, password: str) -> str:
        return await self.real.hash(password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        self.checking += 1
        self.progress.set()
        await self.release.wait()
        return await self.real.verify(password, hashed)


@dataclass(frozen=True)
class Account:
    email: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Flow:
    """One way to have a password checked: its request, and its answer to a wrong password."""

    send: Callable[[AsyncClient, Account, str], Coroutine[Any, Any, Response]]
    wrong: tuple[int, str]


async def log_in(client: AsyncClient, account: Account, password: str) -> Response:
    form = {"username": account.email, "password": password}
    return await client.post("/api/v1/auth/login", data=form)


async def change_password(client: AsyncClient, account: Account, password: str) -> Response:
    body = {"current_password": password, "new_password": "a new horse battery staple"}
    return await client.post("/api/v1/users/me/password", json=body, headers=account.headers)


async def change_email(client: AsyncClient, account: Account, password: str) -> Response:
    body = {"email": unique_email("moved"), "current_password": password}
    return await client.post("/api/v1/users/me/email", json=body, headers=account.headers)


async def create_api_key(client: AsyncClient, account: Account, password: str) -> Response:
    body = {"name": "key", "current_password": password}
    return await client.post("/api/v1/api-keys", json=body, headers=account.headers)


async def delete_account(client: AsyncClient, account: Account, password: str) -> Response:
    body = {"current_password": password}
    return await client.request("DELETE", "/api/v1/users/me", json=body, headers=account.headers)


WRONG_PASSWORD = (401, "wrong_password")
FLOWS = {
    "login": Flow(log_in, (401, "invalid_credentials")),
    "password-change": Flow(change_password, WRONG_PASSWORD),
    "email-change": Flow(change_email, WRONG_PASSWORD),
    "api-key": Flow(create_api_key, WRONG_PASSWORD),
    "account-deletion": Flow(delete_account, WRONG_PASSWORD),
}


@pytest.fixture(params=list(FLOWS))
def flow(request: pytest.FixtureRequest) -> Flow:
    return FLOWS[request.param]


@contextlib.asynccontextmanager
async def from_address(app: FastAPI, host: str) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=(host, 4000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@contextlib.asynccontextmanager
async def attacked(
    live_database_url: str, store: Store
) -> AsyncIterator[tuple[FastAPI, Account, HeldHasher]]:
    """A running app with an account (logged in from elsewhere) whose password checks are held."""
    app = create_app(make_settings(DATABASE_URL=live_database_url, **store.settings))
    email = unique_email("guessed")
    async with LifespanManager(app), from_address(app, "203.0.113.10") as owner:
        user_id = uuid.UUID((await register(owner, email))["id"])
        account = Account(email, bearer(await login(owner, email)))
        resources = resources_of(app)
        held = HeldHasher(resources.password_hasher)
        attach_resources(app, resources.replace(password_hasher=held))
        try:
            yield app, account, held
        finally:
            held.release.set()
            if store.redis is not None:
                await forget_failures(store.redis, email, user_id)


async def forget_failures(url: str, email: str, user_id: uuid.UUID) -> None:
    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match=throttle_key(email, user_id) + "*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def settled(held: HeldHasher, tasks: Iterable[asyncio.Task[Response]]) -> None:
    """Wait until every request is either in its password check or answered."""
    pending = list(tasks)
    for task in pending:
        task.add_done_callback(lambda _: held.progress.set())
    async with asyncio.timeout(SETTLE_SECONDS):
        while held.checking + sum(task.done() for task in pending) < len(pending):
            held.progress.clear()
            await held.progress.wait()


def guesses(
    client: AsyncClient, flow: Flow, account: Account, count: int
) -> list[asyncio.Task[Response]]:
    return [
        asyncio.create_task(flow.send(client, account, f"wrong guess {n}")) for n in range(count)
    ]


def assert_refused(responses: Iterable[Response]) -> None:
    for response in responses:
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1


def statuses(responses: Iterable[Response]) -> list[tuple[int, str]]:
    """Each answer's status and problem code (a success has none)."""
    return [(r.status_code, r.json().get("code", "") if r.content else "") for r in responses]


async def test_guesses_at_once_from_one_client_check_at_most_the_limit(
    live_database_url: str, store: Store, flow: Flow
) -> None:
    async with (
        attacked(live_database_url, store) as (app, account, held),
        from_address(app, ATTACKER) as attacker,
    ):
        tasks = guesses(attacker, flow, account, GUESSES)
        await settled(held, tasks)
        held.release.set()
        responses = await asyncio.gather(*tasks)
    answers = statuses(responses)
    assert held.checking == LIMIT
    assert answers.count(flow.wrong) == LIMIT, answers
    assert_refused(r for r, answer in zip(responses, answers, strict=True) if answer != flow.wrong)


async def test_the_right_password_among_guesses_is_refused_past_the_limit(
    live_database_url: str, store: Store, flow: Flow
) -> None:
    async with (
        attacked(live_database_url, store) as (app, account, held),
        from_address(app, ATTACKER) as attacker,
    ):
        first = guesses(attacker, flow, account, LIMIT)
        await settled(held, first)
        # The first guesses are still being checked: none has failed yet.
        assert held.checking == LIMIT
        right = asyncio.create_task(flow.send(attacker, account, DEFAULT_PASSWORD))
        more = guesses(attacker, flow, account, LIMIT)
        await settled(held, [*first, right, *more])
        held.release.set()
        responses = await asyncio.gather(*first, right, *more)
    assert held.checking == LIMIT
    assert statuses(responses[:LIMIT]) == [flow.wrong] * LIMIT
    assert_refused(responses[LIMIT:])


async def test_guesses_at_once_from_many_addresses_pass_one_per_delay(
    live_database_url: str, store: Store, flow: Flow
) -> None:
    async with attacked(live_database_url, store) as (app, account, held):
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(from_address(app, f"192.0.2.{n}"))
                for n in range(GUESSES)
            ]
            tasks = [
                asyncio.create_task(flow.send(client, account, f"wrong guess {n}"))
                for n, client in enumerate(clients)
            ]
            await settled(held, tasks)
            elapsed = time.monotonic() - started
            held.release.set()
            responses = await asyncio.gather(*tasks)
    # Past LIMIT failures the account answers 1, 2, 4 ... seconds after the newest one: within
    # `elapsed` seconds of the first guess, that lets through floor(log2(elapsed + 1)) more.
    allowed = LIMIT + math.floor(math.log2(elapsed + 1))
    answers = statuses(responses)
    assert LIMIT <= held.checking <= allowed, (held.checking, elapsed)
    assert answers.count(flow.wrong) == held.checking, answers
    assert_refused(r for r, answer in zip(responses, answers, strict=True) if answer != flow.wrong)
