"""Rate-limit stores (app/infra/rate_limit_storage.py, rate_limit_redis.py): memory that prunes
itself and agrees with Redis, both strategies' arithmetic, Redis keys under the app's prefix.
"""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.core.quotas import Quota
from app.infra import rate_limit_storage as storage_module
from app.infra.rate_limit_redis import RedisQuotaStore
from app.infra.rate_limit_storage import MemoryQuotaStore, create_rate_limit_storage
from tests.middleware.rate_limit_apps import get_many, middleware

pytestmark = pytest.mark.anyio

MINUTE, HOUR = Quota("minute", 5, 60), Quota("hour", 5, 3600)


def test_bad_options_are_refused() -> None:
    strategy: Any = "fixed-window"
    with pytest.raises(ValueError, match="strategy must be one of"):
        MemoryQuotaStore(strategy)
    with pytest.raises(ValueError, match="strategy must be one of"):
        RedisQuotaStore(AsyncRedis(), prefix="p:", strategy=strategy)
    with pytest.raises(ValueError, match="prune_interval"):
        MemoryQuotaStore(prune_interval=-1)


# --- Memory store ---------------------------------------------------------------------------


class Clock:
    """Stands in for the `time` module of the memory store."""

    def __init__(self) -> None:
        self.now = 1_000_040.0  # 20 s into a fixed minute

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(storage_module, "time", fake)
    return fake


async def hit(store: MemoryQuotaStore, quotas: list[Quota], *keys: str) -> None:
    for key in keys:
        assert (await store.hit(key, quotas)).allowed


async def test_memory_store_drops_expired_keys(clock: Clock) -> None:
    moving = MemoryQuotaStore("moving-window", prune_interval=10)
    sliding = MemoryQuotaStore("sliding-window-counter", prune_interval=10)
    clients = [f"ip:10.0.0.{n}" for n in range(50)]
    await hit(moving, [MINUTE], *clients)
    await hit(moving, [HOUR], "ip:hourly")
    await hit(sliding, [MINUTE], *clients)
    assert len(moving.events) == 51
    assert len(sliding.counts) == 50

    clock.now += 61  # minute entries expired; the sweep runs at most every 10 s
    await hit(moving, [MINUTE], "ip:new")
    await hit(sliding, [MINUTE], "ip:new")
    assert set(moving.events) == {"minute:60:ip:new", "hour:3600:ip:hourly"}
    assert len(sliding.counts) == 51  # the previous window's counts still weigh

    clock.now += 60
    await hit(sliding, [MINUTE], "ip:newer")
    assert set(sliding.counts) == {"minute:60:ip:new", "minute:60:ip:newer"}
    clock.now += 3600
    await hit(moving, [MINUTE], "ip:latest")
    assert set(moving.events) == {"minute:60:ip:latest"}
    assert set(moving.windows) == {"minute:60:ip:latest"}


async def test_memory_store_trims_expired_entries_of_live_keys(clock: Clock) -> None:
    store = MemoryQuotaStore(prune_interval=0)
    for _ in range(20):
        await hit(store, [Quota("minute", 100, 60)], "ip:busy")
        clock.now += 5
    assert len(store.events["minute:60:ip:busy"]) == 12  # the last 60 seconds


async def test_memory_store_sweeps_in_line_not_in_a_task_per_hit() -> None:
    store = MemoryQuotaStore(prune_interval=0)
    tasks = len(asyncio.all_tasks())
    for n in range(20):
        await hit(store, [MINUTE], f"ip:{n}")
        assert len(asyncio.all_tasks()) == tasks


async def test_the_moving_window_frees_a_slot_as_the_oldest_request_leaves(clock: Clock) -> None:
    store = MemoryQuotaStore()
    quota = Quota("minute", 2, 60)
    await hit(store, [quota], "ip:a")
    clock.now += 20
    await hit(store, [quota], "ip:a")
    refused = await store.hit("ip:a", [quota])
    assert (refused.allowed, refused.remaining, refused.reset_after) == (False, 0, 40)
    clock.now += 40  # the first request is exactly a minute old: out of the window
    assert (await store.hit("ip:a", [quota])).allowed


async def test_a_full_window_of_many_hits_frees_its_slots_oldest_first(clock: Clock) -> None:
    # Thousands of hits in one window: each is checked and expires in order, oldest first.
    store = MemoryQuotaStore(prune_interval=3600)
    quota = Quota("minute", 5_000, 60)
    started = clock.now
    for _ in range(5_000):
        await hit(store, [quota], "ip:busy")
        clock.now += 0.01  # the window fills over 50 s
    refused = await store.hit("ip:busy", [quota])
    oldest_leaves = started + 60 - clock.now
    assert not refused.allowed
    assert refused.reset_after == pytest.approx(oldest_leaves)
    clock.now = started + 60  # the first hit is a minute old: out of the window
    freed = await store.hit("ip:busy", [quota])
    assert (freed.allowed, freed.remaining) == (True, 0)
    again = await store.hit("ip:busy", [quota])  # the second hit leaves 0.01 s later
    assert not again.allowed
    assert again.reset_after == pytest.approx(0.01)
    assert len(store.events["minute:60:ip:busy"]) == 5_000


async def test_the_sliding_window_weighs_the_previous_window(clock: Clock) -> None:
    store = MemoryQuotaStore("sliding-window-counter")
    quota = Quota("minute", 10, 60)
    await hit(store, [quota], *["ip:a"] * 10)
    clock.now += 55  # 15 s into the next fixed minute: the previous one weighs 45/60
    decisions = [await store.hit("ip:a", [quota]) for _ in range(4)]
    # 10 * 0.75 = 7.5 counted: three more fit (floor(7.5 + 3) = 10), the fourth is refused.
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    # The previous window's weight drops by one request every 6 s: next at 45 s % 6 s = 3 s.
    assert decisions[-1].reset_after == pytest.approx(3)


async def test_a_refusal_records_nothing_in_any_window(clock: Clock) -> None:
    for strategy in ("moving-window", "sliding-window-counter"):
        store = MemoryQuotaStore(strategy)
        quotas = [Quota("minute", 5, 60), Quota("hour", 1, 3600)]
        await hit(store, quotas, "ip:a")
        assert not (await store.hit("ip:a", quotas)).allowed
        assert (await store.hit("ip:a", quotas[:1])).remaining == 3


async def test_a_refusal_reports_the_quota_that_frees_last_whatever_its_window(
    clock: Clock,
) -> None:
    # The hour quota refuses too, but its oldest request leaves first: the minute's wait counts.
    store = MemoryQuotaStore()
    quotas = [Quota("hour", 3, 3600), Quota("minute", 2, 60)]
    await hit(store, quotas, "ip:a")
    clock.now += 3590
    await hit(store, quotas, "ip:a")
    clock.now += 5
    await hit(store, quotas, "ip:a")
    clock.now += 1
    refused = await store.hit("ip:a", quotas)
    assert (refused.allowed, refused.quota.name) == (False, "minute")
    assert refused.reset_after == pytest.approx(54)  # the hour's slot frees in 4 s
    clock.now += 54
    assert (await store.hit("ip:a", quotas)).allowed


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
async def test_redis_store_enforces_the_limit(strategy: Any, namespace: RedisNamespace) -> None:
    redis = AsyncRedis.from_url(namespace.url)
    store = create_rate_limit_storage(redis, namespace=namespace.app_name, strategy=strategy)
    try:
        limited = middleware(per_minute=2, store=store)
        responses = await get_many(limited, "/api/v1/items", 3)
    finally:
        await redis.aclose()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["x-ratelimit-remaining"] == "1"
    assert len(namespace.keys()) == 2  # one per quota, under the app's prefix
    assert limited.storage_errors == 0


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
@pytest.mark.parametrize("per_minute", [4, 3], ids=["hour-refuses", "both-refuse"])
async def test_redis_and_memory_decide_alike(
    strategy: Any, per_minute: int, namespace: RedisNamespace
) -> None:
    redis = AsyncRedis.from_url(namespace.url)
    stores = [
        create_rate_limit_storage(redis, namespace=namespace.app_name, strategy=strategy),
        MemoryQuotaStore(strategy),
    ]
    quotas = [Quota("minute", per_minute, 60), Quota("hour", 3, 3600)]
    try:
        runs = [[await store.hit("ip:a", quotas) for _ in range(5)] for store in stores]
    finally:
        await redis.aclose()
    on_redis, in_memory = ([(d.allowed, d.quota, d.remaining) for d in run] for run in runs)
    assert on_redis == in_memory
    assert [d.allowed for d in runs[0]] == [True, True, True, False, False]
    # The hour's wait, the longer (in a fixed hour's last minute sliding counts tie: either).
    assert all(d.quota.name == "hour" or d.reset_after <= 60 for d in runs[0][3:])
    for redis_decision, memory_decision in zip(*runs, strict=True):
        assert redis_decision.reset_after == pytest.approx(memory_decision.reset_after, abs=1)
