"""Finding the test services: a missing test database is created, or skipped with one reason."""

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests import services


async def _admin(url: str, *statements: str) -> list[object]:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            results = [await connection.exec_driver_sql(sql) for sql in statements]
            return [result.scalar() if result.returns_rows else None for result in results]
    finally:
        await engine.dispose()


def admin(*statements: str) -> list[object]:
    return asyncio.run(_admin(services.postgres_url(), *statements))


@pytest.fixture
def database_name() -> Iterator[str]:
    name = f"missing_{uuid.uuid4().hex[:10]}"
    yield name
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_missing_database_is_created(database_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_url(services.postgres_url()).set(database=database_name)
    monkeypatch.setenv("TEST_DATABASE_URL", url.render_as_string(hide_password=False))
    assert services.postgres_url() == url.render_as_string(hide_password=False)
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{database_name}'"  # noqa: S608
    assert admin(exists) == [1]


@pytest.fixture
def unprivileged_role() -> Iterator[tuple[str, str]]:
    role, password = f"nocreate_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    admin(f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'")
    yield role, password
    admin(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.parametrize("required", [False, True])
def test_a_database_that_cannot_be_created_is_one_reason(
    database_name: str,
    unprivileged_role: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    required: bool,
) -> None:
    role, password = unprivileged_role
    url = make_url(services.postgres_url()).set(
        username=role, password=password, database=database_name
    )
    monkeypatch.setenv("TEST_DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.setattr(services, "REQUIRE_SERVICES", required)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected) as raised:
        services.postgres_url()
    message = str(raised.value)
    assert f"database '{database_name}' does not exist and cannot be created" in message
    assert "permission denied" in message
    assert password not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("worker", "database", "redis_db"),
    [
        ("gw0", "test_gw0", "15"),
        ("gw3", "test_gw3", "12"),
        ("gw15", "test_gw15", "0"),
        ("", "test", "15"),
    ],
)
def test_each_parallel_worker_gets_a_database_and_redis_db_of_its_own(
    monkeypatch: pytest.MonkeyPatch, worker: str, database: str, redis_db: str
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal:5432/test")
    monkeypatch.setenv("TEST_REDIS_URL", "redis://:pw@cache.internal:6379/15")
    services.isolate_xdist_worker()
    assert (
        os.environ["TEST_DATABASE_URL"]
        == f"postgresql+asyncpg://app:pw@db.internal:5432/{database}"
    )
    assert os.environ["TEST_REDIS_URL"] == f"redis://:pw@cache.internal:6379/{redis_db}"
