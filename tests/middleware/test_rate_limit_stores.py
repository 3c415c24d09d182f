"""The rate-limit middleware on each store (memory, Redis) and strategy: the same counts,
headers and 429s; on Redis one command per limited request, a refusal that uses no slot,
keys that expire, NOSCRIPT survived, and a Redis that is down (fail open or closed).
"""

import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.core.quotas import Quota, QuotaStore
from app.infra.rate_limit_redis import RedisQuotaStore
from app.infra.rate_limit_storage import MemoryQuotaStore, create_rate_limit_storage
from app.infra.redis import create_redis
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import client_ip_key
from tests.harness import PROBLEM, log_lines, make_settings
from tests.middleware.rate_limit_apps import (
    CLIENT,
    OTHER_CLIENT,
    Calls,
    client,
    get_many,
    middleware,
)
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio

STRATEGIES = ("moving-window", "sliding-window-counter")
KEY = client_ip_key({"client": CLIENT})


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def shared_redis(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[Any]:
    """The test Redis under a namespace of this test's own, emptied afterwards (None: memory)."""
    if backend == "memory":
        yield None
        return
    url = request.getfixturevalue("redis_url_or_skip")
    redis = Redis.from_url(url)
    namespace = f"test-{uuid.uuid4().hex}"
    try:
        yield redis, namespace
    finally:
        if keys := [key async for key in redis.scan_iter(match=f"ratelimit:{namespace}:*")]:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
def store(shared_redis: Any, strategy: Any) -> QuotaStore:
    if shared_redis is None:
        return MemoryQuotaStore(strategy)
    redis, namespace = shared_redis
    return create_rate_limit_storage(redis, namespace=namespace, strategy=strategy)


# --- Every store and strategy ---------------------------------------------------------------


async def test_requests_are_counted_and_refused_past_the_limit(store: QuotaStore) -> None:
    calls = Calls()
    responses = await get_many(middleware(calls, store=store), "/api/v1/items", 5)
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert calls.count == 3
    for remaining, response in zip((2, 1, 0), responses[:3], strict=True):
        assert response.headers["x-ratelimit-remaining"] == str(remaining)
        assert response.headers["x-ratelimit-limit"] == "3"
        assert re.fullmatch(rf'"minute";r={remaining};t=\d+', response.headers["ratelimit"])
        assert 0 <= int(response.headers["x-ratelimit-reset"]) <= 60
    refused = responses[-1]
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["ratelimit-policy"] == '"minute";q=3;w=60, "hour";q=100;w=3600'
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset"]


async def test_the_tightest_quota_is_reported_and_refuses(store: QuotaStore) -> None:
    limited = middleware(per_minute=5, per_hour=2, store=store)
    first, second, refused = await get_many(limited, "/api/v1/items", 3)
    assert first.headers["ratelimit"].startswith('"hour";r=1;')
    assert first.headers["x-ratelimit-limit"] == "2"
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    assert refused.headers["ratelimit"].startswith('"hour";r=0;')


def hour_wait(strategy: str) -> float:
    """How long two requests just counted keep an hour quota of two full: an hour in a moving
    window; in a sliding window counter until this fixed hour ends, when they weigh less.
    """
    return 3600 if strategy == "moving-window" else 3600 - time.time() % 3600


async def test_retry_after_waits_for_every_quota_that_refuses(
    store: QuotaStore, strategy: Any
) -> None:
    # Both quotas full: the minute's wait would see the retry refused by the hour's.
    limited = middleware(per_minute=2, per_hour=2, store=store)
    *_, refused = await get_many(limited, "/api/v1/items", 3)
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert retry_after == pytest.approx(hour_wait(strategy), abs=2), refused.headers
    assert retry_after == int(refused.headers["x-ratelimit-reset"])
    assert re.fullmatch(rf'"(hour|minute)";r=0;t={retry_after}', refused.headers["ratelimit"])


@pytest.mark.parametrize("order", [1, -1], ids=["minute-first", "hour-first"])
async def test_the_refusal_reports_the_quota_that_frees_last(
    store: QuotaStore, strategy: Any, order: int
) -> None:
    quotas = [Quota("minute", 2, 60), Quota("hour", 2, 3600)][::order]
    assert [(await store.hit(KEY, quotas)).allowed for _ in range(2)] == [True, True]
    refused = await store.hit(KEY, quotas)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.reset_after == pytest.approx(hour_wait(strategy), abs=2)
    # In a fixed hour's last minute both sliding counts free as it ends: the first is named.
    assert refused.quota.name == "hour" or refused.reset_after <= 60


async def test_a_refusal_by_the_second_window_uses_no_slot_of_the_first(
    store: QuotaStore,
) -> None:
    limited = middleware(per_minute=5, per_hour=2, store=store)
    responses = await get_many(limited, "/api/v1/items", 6)
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429, 429]
    # Four refusals later the minute quota has counted only the two requests that passed.
    decision = await store.hit(KEY, [Quota("minute", 5, 60)])
    assert (decision.allowed, decision.remaining) == (True, 2)


async def test_each_client_and_each_policy_count_apart(store: QuotaStore) -> None:
    limited = middleware(per_minute=1, per_auth=1, store=store)
    assert [r.status_code for r in await get_many(limited, "/api/v1/items", 2)] == [200, 429]
    [other] = await get_many(limited, "/api/v1/items", 1, address=OTHER_CLIENT)
    assert other.status_code == 200
    decision = await store.hit(KEY, [Quota("auth", 1, 60)])
    assert decision.allowed  # equal limits, another name: counts of its own


# --- Redis ----------------------------------------------------------------------------------


def guarded(server: RedisServer, **settings: Any) -> Redis:
    """The app's own kind of client: one pool behind the circuit breaker."""
    redis = create_redis(make_settings(REDIS_URL=server.url, **settings).redis)
    assert redis is not None
    return redis


async def commands_sent(server: RedisServer, action: Callable[[], Awaitable[object]]) -> list[str]:
    """The names of the commands clients sent Redis during `action` (MONITOR, so the server's
    view), those the scripts ran themselves left out.
    """
    watcher, admin = Redis.from_url(server.url), Redis.from_url(server.url)
    marker = f"done-{uuid.uuid4().hex}"
    sent: list[str] = []
    try:
        await admin.ping()  # connected before watching: only the marker is seen from it
        async with watcher.monitor() as monitor:
            await action()
            await admin.echo(marker)
            while (seen := await monitor.next_command())["command"] != f"ECHO {marker}":
                if seen["client_type"] != "lua":
                    sent.append(seen["command"].split(" ", 1)[0].upper())
    finally:
        await watcher.aclose()
        await admin.aclose()
    return sent


@pytest.mark.redis
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_one_limited_request_sends_one_redis_command(
    redis_server: RedisServer, strategy: Any
) -> None:
    redis = guarded(redis_server)
    store = create_rate_limit_storage(redis, namespace="test", strategy=strategy)
    limited = middleware(store=store)

    async def log_in() -> None:  # the auth policy: one quota
        async with client(limited) as c:
            assert "ratelimit" in (await c.post("/api/v1/auth/login")).headers

    try:
        first = await commands_sent(redis_server, lambda: get_many(limited, "/api/v1/items", 1))
        two_quotas = await commands_sent(
            redis_server, lambda: get_many(limited, "/api/v1/items", 1)
        )
        one_quota = await commands_sent(redis_server, log_in)
    finally:
        await redis.aclose()
    # A new connection's handshake, then NOSCRIPT: the script is loaded once, then run.
    assert first[-3:] == ["EVALSHA", "SCRIPT", "EVALSHA"], first
    assert two_quotas == one_quota == ["EVALSHA"]


@pytest.mark.redis
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_keys_expire_with_their_window(redis_server: RedisServer, strategy: Any) -> None:
    redis = Redis.from_url(redis_server.url)
    store = RedisQuotaStore(redis, prefix="ratelimit:test:", strategy=strategy)
    quotas = [Quota("minute", 3, 60), Quota("hour", 5, 3600)]
    try:
        await store.hit(KEY, quotas)
        minute, hour = store.keys_of(KEY, quotas)
        assert minute.startswith("ratelimit:test:")
        assert sorted(await redis.keys("*")) == sorted([minute.encode(), hour.encode()])
        # Sliding-window counts outlive their window: they weigh in during the next one.
        windows = 1 if strategy == "moving-window" else 2
        assert 0 < await redis.pttl(minute) <= windows * 60_000
        assert windows * 60_000 < await redis.pttl(hour) <= windows * 3_600_000
    finally:
        await redis.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_counts_survive_a_script_flush(redis_server: RedisServer, strategy: Any) -> None:
    redis = guarded(redis_server)
    store = create_rate_limit_storage(redis, namespace="test", strategy=strategy)
    limited = middleware(store=store)
    try:
        before = await get_many(limited, "/api/v1/items", 2)
        await redis.script_flush()  # as a restarted or failed-over Redis would have forgotten
        after = await get_many(limited, "/api/v1/items", 2)
    finally:
        await redis.aclose()
    assert [r.status_code for r in [*before, *after]] == [200, 200, 200, 429]
    assert limited.storage_errors == 0


@pytest.mark.redis
@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_redis_that_is_down_fails_open_or_closed(
    redis_server: RedisServer, fail_open: bool
) -> None:
    redis = guarded(redis_server, REDIS_BREAKER_FAILURES=2)
    calls, errors = Calls(), []
    limited: RateLimitMiddleware = middleware(
        calls,
        store=create_rate_limit_storage(redis, namespace="test"),
        fail_open=fail_open,
        unavailable_retry_after=5,
        on_storage_error=lambda: errors.append(1),
    )
    try:
        [up] = await get_many(limited, "/api/v1/items", 1)
        redis_server.stop()
        with log_lines() as logs:
            down = await get_many(limited, "/api/v1/items", 4)
    finally:
        await redis.aclose()
    assert up.headers["x-ratelimit-remaining"] == "2"
    assert [r.status_code for r in down] == [200 if fail_open else 503] * 4
    assert not any("ratelimit" in r.headers for r in down)
    if not fail_open:
        assert down[0].json()["code"] == "service_unavailable"
        assert down[0].headers["retry-after"] == "5"
    assert calls.count == (5 if fail_open else 1)
    assert limited.storage_errors == len(errors) == 4
    # Two refused connections open the breaker; it refuses the next calls without trying.
    kinds = [w["error_type"] for w in logs.events("rate_limit_storage_error")]
    assert kinds == ["ConnectionError", "CircuitOpenError"]
