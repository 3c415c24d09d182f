"""Redis stopped and Redis frozen under load, against two workers on a private Redis.

Redis serves the rate limiter (on, with limits nobody reaches, so every request asks Redis),
the cache, the idempotency locks and the login throttle. Without it each has an answer; with
it hanging, its circuit breaker keeps a request from paying more than a short timeout.
"""

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import check_database
from tests.e2e.load import Load, assert_no_errors
from tests.e2e.postgres import PostgresServer
from tests.e2e.server import Server, serving, user_headers
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(
    postgres: PostgresServer,
    module_database: str,
    redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    url = postgres.url(module_database)
    with serving(tmp_path_factory.mktemp("server"), DATABASE_URL=url, REDIS_URL=redis.url) as up:
        yield up


async def fault_under_load(
    load: Load, fault_seconds: float, start: Callable[[], None], end: Callable[[], None]
) -> float:
    """Run the load, call `start()` after a second, `end()` `fault_seconds` later; recover 2 s."""
    runner = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(start)
        fault_began = time.monotonic()
        await asyncio.sleep(fault_seconds)
        await asyncio.to_thread(end)
        await asyncio.sleep(3.0)  # one cool-down and a probe, then normal again
    finally:
        load.stop()
        await runner
    return fault_began


async def survives(
    postgres: PostgresServer,
    database: str,
    server: Server,
    fault: tuple[float, Callable[[], None], Callable[[], None]],
) -> tuple[Load, float]:
    """Run a Redis fault under load; check what every Redis fault must leave behind."""
    email, headers = await user_headers(postgres.url(database))
    load = Load(server.url, headers, concurrency=8)
    began = await fault_under_load(load, *fault)
    await check_database(load, postgres, database, email)
    server.assert_clean_log()
    assert_no_errors(load)
    assert load.statuses()[503] == 0  # fail-open: Redis is optional for every request here
    for second in range(int(fault[0])):  # never stalled while Redis was away
        assert load.created_between(began + second, began + second + 1) > 0
    return load, began


async def test_redis_stopped_under_load(
    postgres: PostgresServer, module_database: str, redis: RedisServer, server: Server
) -> None:
    await survives(postgres, module_database, server, (3.0, redis.stop, redis.start))
    assert server.events("circuit_opened")
    assert server.events("circuit_closed")  # back to Redis by itself


async def test_redis_frozen_under_load(
    postgres: PostgresServer, module_database: str, redis: RedisServer, server: Server
) -> None:
    fault = (4.0, redis.freeze, redis.thaw)
    load, began = await survives(postgres, module_database, server, fault)
    frozen = [a for a in load.attempts if began < a.started < began + 4.0]
    # Every request paid at most a few short Redis timeouts, never the old 2 s x 2.
    assert max(a.seconds for a in frozen) < 2.0
    warnings = server.events("rate_limit_storage_error")
    assert len(warnings) < 20  # collapsed, while hundreds of requests failed over
    assert len(frozen) > 20
