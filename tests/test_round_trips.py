"""What the main routes send to the database, counted at the driver: the count is the cost.

Each round trip costs the server CPU and the request its latency, so the counts are kept
exact: `users/me` is one statement; a request that only reads sends no BEGIN or COMMIT; no
request pings its pooled connection (only one idle for a while is pinged).
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import delete, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.deps import resources_of
from app.main import create_app
from app.users.models import User
from tests.harness import client_for, make_settings
from tests.identity import login, register, signed_up, unique_email
from tests.statements import StatementLog, log_statements, transaction_control

pytestmark = pytest.mark.anyio

ITEM = {"title": "Lamp", "price": "19.90", "currency": "EUR", "tags": ["a", "b"]}


@dataclass
class Counted:
    client: AsyncClient
    headers: dict[str, str]
    log: StatementLog

    async def statements(self, method: str, path: str, **kwargs: object) -> list[str]:
        """Send one request; return what it sent to the database (it must succeed)."""
        with self.log.record() as sent:
            response = await self.client.request(method, path, headers=self.headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 300, response.text
        return list(sent)


@pytest.fixture
async def counted(live_database_url: str) -> AsyncIterator[Counted]:
    email = unique_email("trips")
    # The item cache off: an uncached read is what is counted (the cached one below turns it on).
    app = create_app(make_settings(DATABASE_URL=live_database_url, CACHE_ENABLED=False))
    log = log_statements(resources_of(app).engine)
    async with LifespanManager(app), client_for(app) as client:
        try:
            headers = await signed_up(client, email)
            yield Counted(client, headers, log)
        finally:
            await _forget(app, email)


async def _forget(app: FastAPI, email: str) -> None:
    async with resources_of(app).engine.begin() as connection:
        await connection.execute(delete(User).where(User.email == email))  # cascades


async def test_users_me_is_one_statement(counted: Counted) -> None:
    await counted.statements("GET", "/api/v1/users/me")  # the pool is warm from here on
    sent = await counted.statements("GET", "/api/v1/users/me")
    assert len(sent) == 1, sent
    assert sent[0].upper().startswith("SELECT")


async def test_reading_an_item_is_two_statements_without_a_transaction(
    counted: Counted,
) -> None:
    created = (
        await counted.client.post("/api/v1/items", json=ITEM, headers=counted.headers)
    ).json()
    sent = await counted.statements("GET", f"/api/v1/items/{created['id']}")
    # The caller's live session, then the item joined to its tags.
    assert len(sent) == 2, sent
    assert transaction_control(sent) == []


async def test_a_list_is_the_same_statements_for_one_row_or_fifty(counted: Counted) -> None:
    await counted.client.post("/api/v1/items", json=ITEM, headers=counted.headers)
    one = await counted.statements("GET", "/api/v1/items")
    for _ in range(60):
        await counted.client.post("/api/v1/items", json=ITEM, headers=counted.headers)
    fifty = await counted.statements("GET", "/api/v1/items", params={"limit": 50})
    # The caller, (a count when there is more than one page,) the page joined to its tags.
    assert (len(one), len(fifty)) == (2, 3), (one, fifty)
    assert transaction_control(one + fifty) == []


async def test_creating_an_item_is_one_transaction(counted: Counted) -> None:
    sent = await counted.statements("POST", "/api/v1/items", json=ITEM)
    control = transaction_control(sent)
    assert [s.split()[0].upper().rstrip(";") for s in control] == ["BEGIN", "COMMIT"], sent
    # The caller's live session, the item, its tags (one executemany: on SQLite, which runs
    # in process, one execution per tag).
    statements = [s for s in sent if s not in control]
    assert len({s.split(" VALUES")[0] for s in statements}) == 3, sent
    assert len(statements) == 3 or sent[0].startswith("BEGIN IMMEDIATE"), sent


async def test_a_refresh_is_four_statements_in_one_transaction(counted: Counted) -> None:
    email = unique_email("refresh")  # the database is emptied after the test
    await register(counted.client, email)
    tokens = await login(counted.client, email)
    sent = await counted.statements(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    control = transaction_control(sent)
    assert [s.split()[0].upper().rstrip(";") for s in control] == ["BEGIN", "COMMIT"], sent
    # The token; its user, locked (a revocation waits for this rotation, or it for one);
    # the token claimed; the next token. The lock replaced the plain load of the user.
    statements = [s.split()[0].upper() for s in sent if s not in control]
    assert statements == ["SELECT", "SELECT", "UPDATE", "INSERT"], sent


async def test_a_cached_item_read_costs_only_the_session_check(
    live_database_url: str,
) -> None:
    app = create_app(make_settings(DATABASE_URL=live_database_url, CACHE_ENABLED=True))
    log = log_statements(resources_of(app).engine)
    email = unique_email("cached")
    async with LifespanManager(app), client_for(app) as client:
        try:
            counted = Counted(client, await signed_up(client, email), log)
            created = await counted.client.post("/api/v1/items", json=ITEM, headers=counted.headers)
            path = f"/api/v1/items/{created.json()['id']}"
            await counted.statements("GET", path)
            assert len(await counted.statements("GET", path)) == 1
        finally:
            await _forget(app, email)


async def test_only_a_connection_idle_for_a_while_is_pinged_and_a_dead_one_replaced(
    live_database_url: str,
) -> None:
    settings = make_settings(DATABASE_URL=live_database_url, DATABASE_POOL_PING_AFTER_IDLE=0.3)
    app = create_app(settings)
    engine = resources_of(app).engine
    log = log_statements(engine)
    email = unique_email("idle")
    async with LifespanManager(app), client_for(app) as client:
        try:
            counted = Counted(client, await signed_up(client, email), log)
            busy = await counted.statements("GET", "/api/v1/users/me")
            await asyncio.sleep(0.5)
            if engine.dialect.name == "sqlite":  # a file does not go away: never pinged
                assert await counted.statements("GET", "/api/v1/users/me") == busy[-1:]
                return
            assert ";" in await counted.statements("GET", "/api/v1/users/me")
            assert await _terminate_connections(live_database_url, settings.app.name) > 0
            await asyncio.sleep(0.5)
            connects: list[object] = []
            event.listen(engine.sync_engine, "connect", lambda *args: connects.append(args))
            # The ping fails, the pool connects afresh: the caller sees nothing of it.
            assert len(await counted.statements("GET", "/api/v1/users/me")) == 1
            assert len(connects) == 1
        finally:
            await _forget(app, email)


async def _terminate_connections(url: str, application_name: str) -> int:
    other = create_async_engine(url, poolclass=NullPool)
    try:
        async with other.connect() as connection:
            ended = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    # This database only: other test runs beside this one use the same name.
                    " WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": application_name},
            )
            return int(ended.scalar_one())
    finally:
        await other.dispose()
