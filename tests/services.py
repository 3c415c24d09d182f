"""Reaching the real services tests need, and skipping (or failing in CI) when one is absent."""

import asyncio
import os
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

# `.ci/run` sets this: there, a missing service is a failure, never a silent skip.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")
MISSING_DATABASE = "3D000"  # PostgreSQL's SQLSTATE for "database does not exist"


def isolate_xdist_worker() -> None:
    """Give this pytest-xdist worker a database and a Redis db of its own.

    Worker `gwN` uses the database `<name>_gwN` (created on first use) and the Redis db N below
    the one `TEST_REDIS_URL` names (from 0 on to 15), so parallel workers never see each other's
    rows, keys or flushes. A run without xdist keeps the URLs as they are.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    index = int(worker.removeprefix("gw"))
    if database := os.environ.get("TEST_DATABASE_URL"):
        parsed = make_url(database)
        own = parsed.set(database=f"{parsed.database}_{worker}")
        os.environ["TEST_DATABASE_URL"] = own.render_as_string(hide_password=False)
    if redis := os.environ.get("TEST_REDIS_URL"):
        parts = urlsplit(redis)
        base = int(parts.path.strip("/") or 0)
        os.environ["TEST_REDIS_URL"] = urlunsplit(parts._replace(path=f"/{(base - index) % 16}"))


def service_unavailable(reason: str) -> NoReturn:
    """Skip the test with `reason`, or fail it when services are required."""
    message = f"service unavailable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def postgres_url() -> str:
    """Return `TEST_DATABASE_URL` once PostgreSQL answers on it; create its database if allowed."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        service_unavailable("PostgreSQL: set TEST_DATABASE_URL (make test does when it answers)")
    if make_url(url).get_backend_name() != "postgresql":
        service_unavailable(f"TEST_DATABASE_URL is not a PostgreSQL URL: {make_url(url)!r}")
    try:
        asyncio.run(_ensure_database(url))
    except (OSError, TimeoutError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        service_unavailable(f"PostgreSQL at {_shown(url)}: {reason}")
    return url


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _ping_database(url: str) -> None:
    engine = create_async_engine(url, connect_args={"timeout": 3})
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()


async def _ensure_database(url: str) -> None:
    """Connect; when the server answers that the database does not exist, create it."""
    try:
        await _ping_database(url)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != MISSING_DATABASE:
            raise
    else:
        return
    name = make_url(url).database or ""
    engine = create_async_engine(
        make_url(url).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": 3},
    )
    try:
        async with engine.connect() as connection:
            quoted = connection.dialect.identifier_preparer.quote(name)
            await connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0]
        raise OSError(f"database {name!r} does not exist and cannot be created ({reason})") from exc
    finally:
        await engine.dispose()


def redis_url() -> str:
    """Return `TEST_REDIS_URL` once Redis answers on it."""
    url = os.environ.get("TEST_REDIS_URL", "")
    if not url:
        service_unavailable("Redis: set TEST_REDIS_URL (make test does when it answers)")
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except RedisError as exc:
        service_unavailable(f"Redis at TEST_REDIS_URL does not answer ({exc})")
    finally:
        client.close()
    return url
