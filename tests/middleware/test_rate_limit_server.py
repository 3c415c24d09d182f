"""Rate limiting against real processes: uvicorn with two workers, and a Redis that dies."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from redis import Redis

from app.main import create_app
from app.middleware.rate_limit import RateLimitMiddleware
from tests.harness import (
    PROBLEM,
    LogLines,
    client_for,
    free_port,
    log_lines,
    make_settings,
    running,
)
from tests.migrations import migrate
from tests.processes import RedisServer, server_process, wait_for_workers

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
LIMITED_PATH = "/api/v1/users/me"  # 401 without credentials: cheap, and limited like any route


# --- Two uvicorn workers --------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite file migrated by the Alembic command line, as an operator would."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return url


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[int]:
    """Run `uvicorn --workers 2` on a free port until both workers have started."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT_", "REDIS_"))}
    env.update(ENVIRONMENT="test", LOG_FORMAT="json", RATE_LIMIT_ENABLED="true", **settings)
    env.setdefault("SHUTDOWN_DRAIN_SECONDS", "0")  # no load balancer to tell: stop at once
    log = tmp_path / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    with server_process(command, log, env) as server:
        wait_for_workers(server, log, port, 2, what="two uvicorn workers")
        yield port


async def fire(port: int, count: int) -> list[int]:
    """Send `count` concurrent requests, each on a connection of its own."""
    statuses: list[int] = []

    async def one() -> None:
        base_url = f"http://127.0.0.1:{port}"
        async with AsyncClient(base_url=base_url, timeout=10, trust_env=False) as c:
            statuses.append((await c.get(LIMITED_PATH)).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return statuses


@pytest.fixture
def app_name(redis_url_or_skip: str) -> Iterator[str]:
    """An APP_NAME, and so a Redis key prefix, for this test only; its keys go afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    client = Redis.from_url(redis_url_or_skip)
    try:
        if keys := list(client.scan_iter(match=f"ratelimit:{name}:*")):
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.redis
async def test_two_workers_on_redis_share_one_limit(
    tmp_path: Path, database_url: str, redis_url_or_skip: str, app_name: str
) -> None:
    limit = 5
    with serving(
        tmp_path,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url_or_skip,
        APP_NAME=app_name,
        RATE_LIMIT_PER_MINUTE=str(limit),
        RATE_LIMIT_BURST="0",
    ) as port:
        statuses: list[int] = []
        for _ in range(4):
            statuses += await fire(port, 8)
    assert len(statuses) == 32
    assert set(statuses) == {401, 429}
    assert sum(status != 429 for status in statuses) == limit


async def test_two_workers_in_memory_each_keep_their_own_count(
    tmp_path: Path, database_url: str
) -> None:
    # The contrast: without Redis each worker allows `limit`, so the same traffic gets more
    # through, which also shows that these requests reach both workers.
    limit = 5
    with serving(
        tmp_path,
        DATABASE_URL=database_url,
        RATE_LIMIT_PER_MINUTE=str(limit),
        RATE_LIMIT_BURST="0",
    ) as port:
        statuses: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            sum(s != 429 for s in statuses) > limit and 429 in statuses
        ):
            statuses += await fire(port, 8)
    passed = sum(status != 429 for status in statuses)
    assert limit < passed <= 2 * limit
    assert set(statuses) == {401, 429}


# --- A Redis that dies ----------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    asyncio.run(migrate(url, "head"))
    return url


def limiter_of(app: FastAPI) -> RateLimitMiddleware:
    layer: Any = app.middleware_stack
    while not isinstance(layer, RateLimitMiddleware):
        if not hasattr(layer, "app"):
            pytest.fail("RateLimitMiddleware is not installed in the app's stack")
        layer = layer.app
    return layer


@asynccontextmanager
async def app_on(redis: RedisServer, database_url: str, **settings: Any) -> AsyncIterator[Any]:
    app = create_app(
        make_settings(
            DATABASE_URL=database_url,
            REDIS_URL=redis.url,
            RATE_LIMIT_ENABLED=True,
            RATE_LIMIT_PER_MINUTE=2,
            RATE_LIMIT_BURST=0,
            **settings,
        )
    )
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            yield client, app, logs


async def until_limited_again(client: AsyncClient) -> Response:
    deadline = time.monotonic() + 10
    while True:
        response = await client.get(LIMITED_PATH)
        if "ratelimit" in response.headers or time.monotonic() > deadline:
            return response
        await anyio.sleep(0.1)


def warnings_in(logs: LogLines) -> list[dict[str, Any]]:
    return logs.events("rate_limit_storage_error")


async def test_with_fail_open_a_dead_redis_lets_requests_through(
    redis_server: RedisServer, sqlite_url: str
) -> None:
    async with app_on(redis_server, sqlite_url) as (client, app, logs):
        before = [(await client.get(LIMITED_PATH)).status_code for _ in range(3)]
        redis_server.stop()
        during = [await client.get(LIMITED_PATH) for _ in range(5)]
        errors = limiter_of(app).storage_errors
        redis_server.start()  # an empty Redis on the same port
        first = await until_limited_again(client)
        after = [await client.get(LIMITED_PATH) for _ in range(2)]
    assert before == [401, 401, 429]
    assert [r.status_code for r in during] == [401] * 5  # no 5xx, and not limited
    assert not any("ratelimit" in r.headers for r in during)
    assert errors >= 1
    # One line for the refused connections, one for the commands the Redis client's circuit
    # breaker then refused at once: repeats are collapsed, whatever the number of requests.
    warnings = warnings_in(logs)
    assert [w["error_type"] for w in warnings] == ["ConnectionError", "CircuitOpenError"]
    assert str(redis_server.port) not in str(warnings)
    assert first.headers["x-ratelimit-remaining"] == "1"  # enforcement resumed by itself
    assert [r.status_code for r in after] == [401, 429]


async def test_with_fail_open_off_a_dead_redis_answers_503_problems(
    redis_server: RedisServer, sqlite_url: str
) -> None:
    async with app_on(redis_server, sqlite_url, RATE_LIMIT_FAIL_OPEN=False) as (client, app, _):
        assert (await client.get(LIMITED_PATH)).status_code == 401
        redis_server.stop()
        during = [await client.get(LIMITED_PATH) for _ in range(3)]
        health = await client.get("/health")
        redis_server.start()
        first = await until_limited_again(client)
        after = [await client.get(LIMITED_PATH) for _ in range(2)]
    assert [r.status_code for r in during] == [503] * 3
    problem = during[0]
    assert problem.headers["content-type"] == PROBLEM
    assert problem.json()["code"] == "service_unavailable"
    assert int(problem.headers["retry-after"]) >= 1
    assert health.status_code == 200  # exempt paths never touch the storage
    assert limiter_of(app).storage_errors >= 1
    assert first.status_code == 401
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert [r.status_code for r in after] == [401, 429]
