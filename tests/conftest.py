"""Fixtures: one migrated database per backend, the app over ASGI, per-test isolation."""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.main import create_app
from tests.harness import client_for, free_port, make_settings, running
from tests.identity import signed_up, unique_email
from tests.migrations import empty_tables, migrate, reset_postgres
from tests.processes import RedisServer
from tests.services import isolate_xdist_worker, postgres_url, redis_url

BACKENDS = ("sqlite", "postgresql")
# An identity provider's keys and JWKS server, for every test that needs one.
pytest_plugins = ("tests.jwks",)
# A parallel worker gets its own services before anything reads their URLs: at import, as the
# conftests below this one are imported before `pytest_configure` when a run names their
# directory (`pytest tests/contract -n 2`), and tests/contract's reads its URL at import.
isolate_xdist_worker()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database: a fresh SQLite file, or the emptied PostgreSQL test database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = postgres_url()
        asyncio.run(reset_postgres(url))
    asyncio.run(migrate(url, "head"))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(DATABASE_URL=database_url)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a service that is down."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a host that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own (free port, own directory): it may be frozen,
    killed or flushed, and its statistics and scripts concern no other test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url_or_skip() -> str:
    return redis_url()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(create_app(settings)) as started:
        yield started


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def live_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database whose commits are real (no rolled-back harness).

    A fresh SQLite file, or the PostgreSQL test database emptied after the test: a row one test
    commits (a superuser, say) must not change what the next one sees. For what only separate
    connections show: concurrency, locks, races.
    """
    if make_url(database_url).get_backend_name() != "sqlite":
        try:
            yield database_url
        finally:
            await empty_tables(database_url)
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    await migrate(url, "head")
    yield url


@pytest.fixture(scope="module")
async def shared_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncClient]:
    """One app on SQLite for a module's table of refusals, its cases run one after another.

    A check made before any handler runs (paths, media types, repeated headers or members)
    depends neither on the database nor on what it holds; an app and an account per case, on
    both backends, made such tables some of the suite's slowest minutes.
    """
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('shared') / 'app.db'}"
    await migrate(url, "head")
    async with running(create_app(make_settings(DATABASE_URL=url))) as app, client_for(app) as c:
        yield c


@pytest.fixture(scope="module")
async def shared_caller(shared_client: AsyncClient) -> dict[str, str]:
    """The bearer header of an account signed up once on `shared_client`."""
    return await signed_up(shared_client, unique_email("caller"))
