"""Transaction locks on a name: a second transaction waits for the first (real connections)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.locks import lock_for_transaction
from app.db.session import create_engine, create_session_factory
from tests.harness import make_settings

pytestmark = pytest.mark.anyio

BLOCKED_SECONDS = 0.3


@pytest.fixture
async def engine(live_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        make_settings(DATABASE_URL=live_database_url).database, application_name="t"
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def take(session: AsyncSession, name: str) -> None:
    await lock_for_transaction(session, name)
    await session.execute(select(1))  # on SQLite, the first statement takes the write lock


async def test_a_second_transaction_waits_until_the_first_ends(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    async with sessions() as first, sessions() as second:
        await take(first, "login-throttle:a@example.com")
        waiting = asyncio.create_task(take(second, "login-throttle:a@example.com"))
        await asyncio.sleep(BLOCKED_SECONDS)
        assert not waiting.done()
        await first.commit()
        await asyncio.wait_for(waiting, 5)
        await second.commit()


async def test_other_names_wait_only_on_sqlite(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    async with sessions() as first, sessions() as second:
        await take(first, "login-throttle:a@example.com")
        other = asyncio.create_task(take(second, "login-throttle:b@example.com"))
        await asyncio.sleep(BLOCKED_SECONDS)
        # PostgreSQL locks the name; SQLite has one write lock for every transaction.
        assert other.done() is (engine.dialect.name != "sqlite")
        await first.commit()
        await asyncio.wait_for(other, 5)
        await second.commit()
