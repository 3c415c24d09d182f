"""Private PostgreSQL and Redis for the fault tests, a fresh database per test, checks."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.load import Load, assert_consistent
from tests.e2e.postgres import PostgresServer
from tests.migrations import migrate
from tests.processes import RedisServer

TEMPLATE = "e2e_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private server for the e2e tests, with a migrated template database."""
    server = PostgresServer()
    server.init()
    server.start()
    try:
        asyncio.run(server.execute(f"CREATE DATABASE {TEMPLATE}"))
        asyncio.run(migrate(server.url(TEMPLATE), "head"))
        yield server
    finally:
        server.remove()


@contextmanager
def fresh_database(postgres: PostgresServer) -> Iterator[str]:
    """A migrated database on the private server (started again if a test stopped it)."""
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    try:
        yield name
    finally:
        postgres.start_if_stopped()
        asyncio.run(postgres.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    """A database of the test's own."""
    with fresh_database(postgres) as name:
        yield name


@pytest.fixture(scope="module")
def module_database(postgres: PostgresServer) -> Iterator[str]:
    """A database the tests of one module share (with one server: starting one costs ~10 s)."""
    with fresh_database(postgres) as name:
        yield name


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.thaw()  # a frozen Redis ignores SIGTERM until it runs again
        server.stop()


async def items_of(postgres: PostgresServer, database: str, email: str) -> list[tuple[str, str]]:
    """The (id, title) of every item the user owns, read on a connection of the test's own."""
    connection = await postgres.connect(database)
    try:
        rows = await connection.fetch(
            "SELECT items.id, items.title FROM items JOIN users ON users.id = items.owner_id "
            "WHERE users.email = $1",
            email,
        )
    finally:
        await connection.close()
    return [(str(row["id"]), str(row["title"])) for row in rows]


async def check_database(load: Load, postgres: PostgresServer, database: str, email: str) -> None:
    """Resolve every create that got no 201, then compare answers and rows."""
    await load.resolve()
    assert_consistent(load, await items_of(postgres, database, email))
