"""Rate-limit storages (app/infra/rate_limit_storage.py): memory that prunes itself, Redis."""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.infra import rate_limit_storage as storage_module
from app.infra.rate_limit_storage import PrunedMemoryStorage, create_rate_limit_storage
from tests.middleware.rate_limit_apps import get_many, middleware

pytestmark = pytest.mark.anyio


def test_a_negative_prune_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="prune_interval"):
        PrunedMemoryStorage(prune_interval=-1)


# --- Memory storage -------------------------------------------------------------------------


class Clock:
    """Stands in for the `time` module of the memory storage."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(storage_module, "time", fake)
    return fake


async def hit(
    limiter: MovingWindowRateLimiter | SlidingWindowCounterRateLimiter,
    item: RateLimitItem,
    *keys: str,
) -> None:
    for key in keys:
        assert await limiter.hit(item, key)


async def test_memory_storage_drops_expired_keys(clock: Clock) -> None:
    storage = PrunedMemoryStorage(prune_interval=10)
    moving, sliding = MovingWindowRateLimiter(storage), SlidingWindowCounterRateLimiter(storage)
    minute, hour = RateLimitItemPerMinute(5), RateLimitItemPerHour(5)
    clients = [f"ip:10.0.0.{n}" for n in range(50)]
    await hit(moving, minute, *clients)
    await hit(moving, hour, "ip:hourly")
    await hit(sliding, minute, *clients)
    assert len(storage.events) == 51
    assert len(storage.counters) == 50

    clock.now += 61  # minute entries expired; the sweep runs at most every 10 s
    await hit(moving, minute, "ip:new")
    assert set(storage.events) == {minute.key_for("ip:new"), hour.key_for("ip:hourly")}
    assert len(storage.counters) == 50  # sliding-window counters live for two windows

    clock.now += 60
    await hit(moving, minute, "ip:newer")
    assert len(storage.counters) == 0
    clock.now += 3600
    await hit(moving, minute, "ip:latest")
    assert set(storage.events) == {minute.key_for("ip:latest")}
    assert set(storage.windows) == {minute.key_for("ip:latest")}


async def test_memory_storage_trims_expired_entries_of_live_keys(clock: Clock) -> None:
    storage = PrunedMemoryStorage(prune_interval=0)
    limiter = MovingWindowRateLimiter(storage)
    minute = RateLimitItemPerMinute(100)
    for _ in range(20):
        await hit(limiter, minute, "ip:busy")
        clock.now += 5
    assert len(storage.events[minute.key_for("ip:busy")]) == 12  # the last 60 seconds


async def test_memory_storage_sweeps_in_line_not_in_a_task_per_hit() -> None:
    # `limits`' own memory storage starts a sweeping task after every hit (see the class).
    storage = PrunedMemoryStorage(prune_interval=0)
    limiter = MovingWindowRateLimiter(storage)
    tasks = len(asyncio.all_tasks())
    for n in range(20):
        await hit(limiter, RateLimitItemPerMinute(5), f"ip:{n}")
        assert len(asyncio.all_tasks()) == tasks


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisNamespace:
    """An APP_NAME whose rate-limit keys no other test uses; they are deleted afterwards."""

    url: str
    app_name: str
    client: Redis

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=f"ratelimit:{self.app_name}:*"))


@pytest.fixture
def namespace(redis_url_or_skip: str) -> Iterator[RedisNamespace]:
    client = Redis.from_url(redis_url_or_skip)
    created = RedisNamespace(redis_url_or_skip, f"test-{uuid.uuid4().hex}", client)
    try:
        yield created
    finally:
        if found := created.keys():
            client.delete(*found)
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
async def test_redis_storage_enforces_the_limit(strategy: str, namespace: RedisNamespace) -> None:
    redis = AsyncRedis.from_url(namespace.url)
    storage = create_rate_limit_storage(redis, namespace=namespace.app_name)
    try:
        limited = middleware(per_minute=2, storage=storage, strategy=strategy)
        responses = await get_many(limited, "/api/v1/items", 3)
    finally:
        await redis.aclose()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["x-ratelimit-remaining"] == "1"
    assert namespace.keys()  # under the app's prefix
    assert limited.storage_errors == 0
