"""What each cache backend reports per call (`on_result`), which metrics count."""

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.infra.cache import MemoryCache, RedisCache, create_cache
from app.infra.redis import create_redis
from tests.harness import FakeClock, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def unreachable_redis(closed_port: int) -> AsyncIterator[Redis]:
    url = f"redis://127.0.0.1:{closed_port}/0"
    async with Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as redis:
        yield redis


async def test_memory_reads_are_hits_or_misses() -> None:
    heard: list[str] = []
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, default_ttl=5, clock=clock, on_result=heard.append)
    await cache.get("a")
    await cache.set("a", b"1")
    await cache.get("a")
    clock.advance(5)
    await cache.get("a")  # expired
    await cache.delete("a")
    assert heard == ["miss", "hit", "miss"]


@pytest.mark.redis
async def test_redis_reads_are_hits_or_misses(redis_url_or_skip: str) -> None:
    heard: list[str] = []
    prefix = f"test-cache:{uuid.uuid4().hex}:"
    async with Redis.from_url(redis_url_or_skip) as redis:
        cache = RedisCache(redis, prefix=prefix, default_ttl=60, on_result=heard.append)
        await cache.get("a")
        await cache.set("a", b"1")
        await cache.get("a")
        await cache.delete("a")
    assert heard == ["miss", "hit"]


async def test_a_failing_redis_reports_errors(unreachable_redis: Redis) -> None:
    heard: list[str] = []
    cache = RedisCache(unreachable_redis, prefix="p:", default_ttl=60, on_result=heard.append)
    assert await cache.get("a") is None
    await cache.set("a", b"1")
    await cache.delete("a")
    assert heard == ["error", "error", "error"]
    assert cache.errors == 3


async def test_calls_the_circuit_breaker_refuses_are_skipped(closed_port: int) -> None:
    heard: list[str] = []
    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{closed_port}/0", REDIS_BREAKER_FAILURES=1
    )
    redis = create_redis(settings.redis)
    assert redis is not None
    cache = RedisCache(redis, prefix="p:", default_ttl=60, on_result=heard.append)
    assert await cache.get("a") is None  # fails, and opens the breaker
    assert await cache.get("a") is None  # refused at once: Redis is left alone
    await cache.set("a", b"1")
    await cache.delete("a")
    await redis.aclose()
    assert heard == ["error", "skipped", "skipped", "skipped"]
    assert cache.errors == 1


async def test_a_disabled_cache_makes_no_calls_to_report() -> None:
    heard: list[str] = []
    cache = create_cache(
        make_settings(CACHE_ENABLED=False).cache, None, namespace="x", on_result=heard.append
    )
    await cache.set("a", b"1")
    assert await cache.get("a") is None
    assert heard == []
