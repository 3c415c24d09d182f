import asyncio
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth.throttle import RedisLoginThrottle, ThrottleRules
from app.core.circuit import State
from app.core.config import Settings
from app.core.quotas import Quota
from app.deps import RedisDep
from app.infra.cache import RedisCache
from app.infra.rate_limit_storage import create_rate_limit_storage
from app.infra.redis import CircuitOpenError, breaker_of, create_redis
from tests.harness import PROBLEM, make_settings, started

pytestmark = pytest.mark.anyio


def add_counter_route(app: FastAPI) -> None:
    @app.post("/counter")
    async def increment(redis: RedisDep) -> dict[str, int]:
        return {"value": int(await redis.incr("test:counter"))}


async def test_routes_needing_redis_answer_503_without_it(settings: Settings) -> None:
    async with started(settings, add_counter_route) as (_, client):
        response = await client.post("/counter")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "service_unavailable"
    assert "REDIS_URL" in response.json()["detail"]


async def test_routes_get_the_shared_client(settings: Settings, redis_url_or_skip: str) -> None:
    async with started(settings, add_counter_route, REDIS_URL=redis_url_or_skip) as (_, client):
        await client.post("/counter")  # whatever an earlier run left, the next one is +1
        first = (await client.post("/counter")).json()["value"]
        second = (await client.post("/counter")).json()["value"]
    assert second == first + 1


# --- The guarded pool: breaker, no retried timeouts, blocking pool --------------------------


class SilentServer:
    """A TCP server that accepts connections and never answers: a frozen Redis."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> "SilentServer":
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"


def guarded(url: str, **settings: Any) -> Redis:
    client = create_redis(make_settings(REDIS_URL=url, **settings).redis)
    assert client is not None
    return client


async def test_a_timeout_is_not_retried_and_opens_the_breaker_after_a_few() -> None:
    async with SilentServer() as frozen:
        redis = guarded(frozen.url, REDIS_SOCKET_TIMEOUT=0.1, REDIS_BREAKER_FAILURES=3)
        errors = []
        for _ in range(6):
            try:
                await redis.get("k")
            except RedisError as exc:
                errors.append(type(exc))
        await redis.aclose()
        assert frozen.connections == 3  # one per failing command, then none while open
    assert errors == [RedisTimeoutError] * 3 + [CircuitOpenError] * 3
    breaker = breaker_of(redis)
    assert breaker is not None
    assert (breaker.state, breaker.failures, breaker.refused) == (State.OPEN, 3, 3)


async def test_every_user_of_the_client_shares_its_breaker(closed_port: int) -> None:
    redis = guarded(f"redis://127.0.0.1:{closed_port}/0", REDIS_BREAKER_FAILURES=2)
    cache = RedisCache(redis, prefix="cache:test:", default_ttl=60)
    with pytest.raises(RedisConnectionError):
        await redis.ping()
    assert await cache.get("k") is None  # the second failure opens it
    with pytest.raises(CircuitOpenError):
        await redis.ping()
    lock = redis.lock("lock:test", timeout=1, blocking=False)
    with pytest.raises(CircuitOpenError):
        await lock.acquire()
    rules = ThrottleRules(max_attempts=3, window_seconds=60, max_delay_seconds=10)
    with pytest.raises(CircuitOpenError):
        await RedisLoginThrottle(redis, client="203.0.113.9", rules=rules).reserve("a@b.test", None)
    storage = create_rate_limit_storage(redis, namespace="test")
    with pytest.raises(CircuitOpenError):
        await storage.hit("ip:203.0.113.9", [Quota("minute", 1, 60)])
    await redis.aclose()
    assert cache.errors == 1


async def test_after_the_cool_down_one_probe_finds_redis_back(redis_url_or_skip: str) -> None:
    redis = guarded(redis_url_or_skip, REDIS_BREAKER_COOL_DOWN_SECONDS=0.2)
    breaker = breaker_of(redis)
    assert breaker is not None
    for _ in range(breaker.failure_threshold):
        breaker.failed()  # as if Redis had just failed three times
    with pytest.raises(CircuitOpenError):
        await redis.ping()
    await asyncio.sleep(0.25)
    assert await redis.ping() is True
    assert breaker.state is State.CLOSED
    await redis.aclose()


async def test_more_concurrent_commands_than_connections_wait_for_one(
    redis_url_or_skip: str,
) -> None:
    redis = guarded(redis_url_or_skip, REDIS_MAX_CONNECTIONS=3, REDIS_POOL_TIMEOUT=5)
    key = f"test:pool:{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(*(redis.incr(key) for _ in range(200)))
        assert sorted(results) == list(range(1, 201))  # no MaxConnectionsError
        assert len(redis.connection_pool._in_use_connections) == 0
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_a_cancelled_command_is_not_a_redis_failure() -> None:
    async with SilentServer() as frozen:
        redis = guarded(frozen.url, REDIS_SOCKET_TIMEOUT=5, REDIS_BREAKER_FAILURES=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):  # a request deadline, not Redis, gave up
                await redis.get("k")
        breaker = breaker_of(redis)
        await redis.aclose()
    assert breaker is not None
    assert (breaker.state, breaker.failures) == (State.CLOSED, 0)


def test_clients_not_built_here_have_no_breaker() -> None:
    assert breaker_of(None) is None
    assert breaker_of(Redis()) is None
