import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from redis.asyncio import Redis

from app.core.config import Settings
from app.deps import CacheDep, resources_of
from app.infra.cache import Cache, MemoryCache, NullCache, RedisCache, create_cache
from app.infra.read_through import cached
from app.main import create_app
from tests.harness import FakeClock, client_for, log_lines, make_settings, running

pytestmark = pytest.mark.anyio


@dataclass
class Backend:
    cache: Cache
    elapse: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Backend(MemoryCache(max_entries=100, default_ttl=60, clock=clock), advance)
        return

    url: str = request.getfixturevalue("redis_url_or_skip")
    prefix = f"test-cache:{uuid.uuid4().hex}:"

    async def wait(seconds: float) -> None:
        await anyio.sleep(seconds + 0.1)  # Redis expires keys by its own millisecond clock

    async with Redis.from_url(url) as redis:
        try:
            yield Backend(RedisCache(redis, prefix=prefix, default_ttl=60), wait)
        finally:
            keys = [key async for key in redis.scan_iter(match=prefix + "*")]
            if keys:
                await redis.delete(*keys)


@pytest.fixture
async def redis_cache(redis_url_or_skip: str) -> AsyncIterator[RedisCache]:
    prefix = f"test-cache:{uuid.uuid4().hex}:"
    async with Redis.from_url(redis_url_or_skip) as redis:
        try:
            yield RedisCache(redis, prefix=prefix, default_ttl=60)
        finally:
            keys = [key async for key in redis.scan_iter(match=prefix + "*")]
            if keys:
                await redis.delete(*keys)


@pytest.fixture
async def unreachable_redis(closed_port: int) -> AsyncIterator[Redis]:
    url = f"redis://127.0.0.1:{closed_port}/0"
    async with Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as redis:
        yield redis


# Behaviour shared by both backends.


async def test_a_key_never_set_is_a_miss(backend: Backend) -> None:
    assert await backend.cache.get("items:absent") is None


async def test_a_stored_value_is_returned_and_an_overwrite_replaces_it(backend: Backend) -> None:
    await backend.cache.set("items:1", b'{"name":"first"}')
    assert await backend.cache.get("items:1") == b'{"name":"first"}'
    await backend.cache.set("items:1", b'{"name":"second"}')
    assert await backend.cache.get("items:1") == b'{"name":"second"}'


async def test_delete_removes_many_keys_and_ignores_missing_ones(backend: Backend) -> None:
    cache = backend.cache
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode())
    await cache.delete("a", "b", "never-set")
    await cache.delete()
    assert [await cache.get(key) for key in ("a", "b", "c")] == [None, None, b"c"]


async def test_entries_expire_after_their_ttl(backend: Backend) -> None:
    await backend.cache.set("short", b"v", ttl=1)
    await backend.cache.set("long", b"v")
    assert await backend.cache.get("short") == b"v"
    await backend.elapse(1)
    assert await backend.cache.get("short") is None
    assert await backend.cache.get("long") == b"v"


@pytest.mark.parametrize("ttl", [0, -5])
async def test_a_ttl_under_one_second_is_refused(backend: Backend, ttl: int) -> None:
    with pytest.raises(ValueError, match="at least one second"):
        await backend.cache.set("k", b"v", ttl=ttl)
    assert await backend.cache.get("k") is None


async def test_cached_loads_once_then_serves_from_the_cache(backend: Backend) -> None:
    loads: list[str] = []

    async def load() -> bytes:
        loads.append("load")
        return b'{"id":1}'

    first = await cached(backend.cache, "items:1", load)
    second = await cached(backend.cache, "items:1", load)
    assert (first, second) == (b'{"id":1}', b'{"id":1}')
    assert loads == ["load"]


async def test_cached_does_not_store_a_missing_value(backend: Backend) -> None:
    loads: list[str] = []

    async def load() -> bytes | None:
        loads.append("load")
        return None

    assert await cached(backend.cache, "items:gone", load) is None
    assert await cached(backend.cache, "items:gone", load) is None
    assert loads == ["load", "load"]


async def test_cached_uses_the_ttl_it_is_given(backend: Backend) -> None:
    async def load() -> bytes:
        return b"v"

    await cached(backend.cache, "k", load, ttl=1)
    await backend.elapse(1)
    assert await backend.cache.get("k") is None


# The memory backend: TTL boundaries, LRU eviction and its bound.


async def test_memory_entries_live_exactly_their_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, default_ttl=60, clock=clock)
    await cache.set("default", b"v")
    await cache.set("explicit", b"v", ttl=5)
    clock.advance(4.999)
    assert await cache.get("explicit") == b"v"
    clock.advance(0.001)
    assert await cache.get("explicit") is None
    clock.advance(54.999)
    assert await cache.get("default") == b"v"
    clock.advance(0.001)
    assert await cache.get("default") is None
    assert len(cache) == 0  # expired entries are dropped when read


async def test_memory_overwrite_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, default_ttl=10, clock=clock)
    await cache.set("k", b"old")
    clock.advance(8)
    await cache.set("k", b"new")
    clock.advance(8)
    assert await cache.get("k") == b"new"


async def test_memory_evicts_the_least_recently_used_entry() -> None:
    cache = MemoryCache(max_entries=3, default_ttl=60, clock=FakeClock())
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode())
    assert await cache.get("a") == b"a"  # now b is the least recently used
    await cache.set("d", b"d")
    assert len(cache) == 3
    assert [await cache.get(key) for key in ("a", "b", "c", "d")] == [b"a", None, b"c", b"d"]


async def test_memory_overwrite_counts_as_a_use_not_a_new_entry() -> None:
    cache = MemoryCache(max_entries=2, default_ttl=60, clock=FakeClock())
    await cache.set("a", b"1")
    await cache.set("b", b"1")
    await cache.set("a", b"2")
    await cache.set("c", b"1")
    assert [await cache.get(key) for key in ("a", "b", "c")] == [b"2", None, b"1"]


async def test_memory_evicts_expired_entries_before_live_ones() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=3, default_ttl=100, clock=clock)
    await cache.set("old-but-live", b"v")
    await cache.set("short", b"v", ttl=5)
    await cache.set("recent", b"v")
    assert await cache.get("short") == b"v"  # the most recently used, yet expiring first
    clock.advance(6)
    await cache.set("new", b"v")
    assert len(cache) == 3
    assert await cache.get("old-but-live") == b"v"
    assert await cache.get("recent") == b"v"
    assert await cache.get("new") == b"v"


async def test_memory_never_holds_more_than_max_entries() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=50, default_ttl=30, clock=clock)
    rng = random.Random(7)  # noqa: S311 - a repeatable sequence, not a secret
    latest: dict[str, bytes] = {}
    sizes: list[int] = []
    for step in range(5000):
        key = f"k{rng.randrange(200)}"
        action = rng.random()
        if action < 0.5:
            latest[key] = value = str(step).encode()
            await cache.set(key, value, ttl=rng.choice([None, 1, 10]))
        elif action < 0.9:
            got = await cache.get(key)
            assert got is None or got == latest[key]
        else:
            await cache.delete(key)
            latest.pop(key, None)
        clock.advance(rng.random())
        sizes.append(len(cache))
    assert max(sizes) == 50


def test_memory_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0, default_ttl=60)
    with pytest.raises(ValueError, match="at least one second"):
        MemoryCache(max_entries=10, default_ttl=0)


# The Redis backend: TTLs, prefix, failing open.


async def test_redis_entries_carry_their_ttl_under_the_prefix(redis_cache: RedisCache) -> None:
    await redis_cache.set("default", b"v")
    await redis_cache.set("explicit", b"v", ttl=5)
    redis = redis_cache.redis
    assert 59 <= await redis.ttl(redis_cache.prefix + "default") <= 60
    assert 4 <= await redis.ttl(redis_cache.prefix + "explicit") <= 5
    assert await redis.exists("default", "explicit") == 0


async def test_an_unreachable_redis_fails_open(unreachable_redis: Redis) -> None:
    cache = RedisCache(unreachable_redis, prefix="cache:test:", default_ttl=60)
    with log_lines() as lines:
        started = time.monotonic()
        assert await cache.get("users:alice@example.com") is None
        elapsed = time.monotonic() - started
        await cache.set("users:alice@example.com", b"secret-profile")
        await cache.delete("users:alice@example.com", "items:1")
        assert await cache.get("users:bob@example.com") is None
    assert elapsed < 1.0
    assert cache.errors == 4
    warnings = lines.events("cache_error")
    # One line per operation that failed; the repeated `get` is collapsed.
    assert [w["operation"] for w in warnings] == ["get", "set", "delete"]
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["error_type"] == "ConnectionError"
    assert warnings[0]["errors"] == 1
    assert "secret-profile" not in str(lines.all())


async def test_a_bad_ttl_is_refused_even_when_redis_is_down(unreachable_redis: Redis) -> None:
    cache = RedisCache(unreachable_redis, prefix="cache:test:", default_ttl=60)
    with pytest.raises(ValueError, match="at least one second"):
        await cache.set("k", b"v", ttl=0)
    assert cache.errors == 0


# Choosing the backend, and the app's cache.


async def test_create_cache_is_memory_without_a_redis_client() -> None:
    cache = create_cache(
        make_settings(CACHE_MAX_ENTRIES=7, CACHE_TTL_SECONDS=9).cache, None, namespace="test"
    )
    assert isinstance(cache, MemoryCache)
    assert (cache.max_entries, cache.default_ttl) == (7, 9)


async def test_create_cache_is_redis_with_a_client(unreachable_redis: Redis) -> None:
    settings = make_settings(APP_NAME="Acme  Orders API", CACHE_TTL_SECONDS=9)
    cache = create_cache(settings.cache, unreachable_redis, namespace=settings.app.slug)
    assert isinstance(cache, RedisCache)
    assert cache.redis is unreachable_redis
    assert cache.prefix == "cache:acme-orders-api:"
    assert cache.default_ttl == 9


def add_cached_route(app: FastAPI) -> list[str]:
    loads: list[str] = []

    @app.get("/cached/{name}")
    async def read(name: str, cache: CacheDep) -> dict[str, str]:
        async def load() -> bytes:
            loads.append(name)
            return name.upper().encode()

        value = await cached(cache, f"test-route:{name}", load)
        assert value is not None
        return {"value": value.decode()}

    return loads


async def read_twice(client: AsyncClient, name: str) -> list[str]:
    first = (await client.get(f"/cached/{name}")).json()["value"]
    second = (await client.get(f"/cached/{name}")).json()["value"]
    return [first, second]


async def test_the_app_caches_in_memory_without_redis(settings: Settings) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url))
    loads = add_cached_route(app)
    async with running(app), client_for(app) as client:
        assert isinstance(resources_of(app).cache, MemoryCache)
        assert await read_twice(client, "x") == ["X", "X"]
    assert loads == ["x"]


async def test_the_app_caches_in_redis_with_redis_url(
    settings: Settings, redis_url_or_skip: str
) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url, REDIS_URL=redis_url_or_skip))
    loads = add_cached_route(app)
    name = uuid.uuid4().hex
    async with running(app), client_for(app) as client:
        cache = resources_of(app).cache
        assert isinstance(cache, RedisCache)
        assert cache.redis is resources_of(app).redis
        try:
            assert await read_twice(client, name) == [name.upper()] * 2
            assert (
                await cache.redis.get(cache.prefix + f"test-route:{name}") == name.upper().encode()
            )
        finally:
            await cache.delete(f"test-route:{name}")
    assert loads == [name]


async def test_a_disabled_cache_keeps_nothing() -> None:
    cache = create_cache(make_settings(CACHE_ENABLED=False).cache, redis=None, namespace="test")
    assert isinstance(cache, NullCache)
    await cache.set("k", b"v")
    assert await cache.get("k") is None
    await cache.delete("k")
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"fresh"

    assert await cached(cache, "k", load) == b"fresh"
    assert await cached(cache, "k", load) == b"fresh"
    assert loads == 2
