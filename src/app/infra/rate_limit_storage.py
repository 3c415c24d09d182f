"""Where the rate limiter keeps its counts: in process, or in the shared Redis."""

import bisect
import math
import time
from typing import Any

from limits.aio.storage import (
    MovingWindowSupport,
    RedisStorage,
    SlidingWindowCounterSupport,
    Storage,
)
from limits.storage.base import TimestampedSlidingWindow
from redis.asyncio import Redis

# Both names `limits` documents for building a storage from a URI are taken by its own classes.
MEMORY_SCHEME = "async+pruned-memory"


class PrunedMemoryStorage(
    Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow
):
    """An in-process `limits` storage for the moving-window and sliding-window-counter strategies.

    Built on the library's public storage interface instead of subclassing its `MemoryStorage`,
    which starts a task after every hit that sweeps every key with one thread hop per key
    (measured: ~90 µs of CPU per request with a single client). Here expired counters and
    entries are dropped by a synchronous sweep at most once every `prune_interval` seconds.
    No method awaits between reading a key and updating it, so one event loop needs no locks.
    """

    STORAGE_SCHEME = [MEMORY_SCHEME]  # noqa: RUF012 - the library's registry reads a list

    def __init__(self, prune_interval: float = 10.0) -> None:
        if prune_interval < 0:
            raise ValueError("prune_interval must be zero or more seconds.")
        super().__init__()
        self.prune_interval = prune_interval
        self.counters: dict[str, int] = {}
        self.expirations: dict[str, float] = {}  # when each counter ends
        self.events: dict[str, list[float]] = {}  # moving-window hits, newest first
        self.windows: dict[str, int] = {}  # each event list's window, in seconds
        self._next_prune = time.monotonic() + prune_interval

    @property
    def base_exceptions(self) -> type[Exception]:
        """The errors `limits` may wrap as storage errors (none are expected in memory)."""
        return ValueError

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` to a counter that lives `expiry` seconds from its first increment."""
        self._prune_now_and_then()
        return self._incr(key, expiry, amount)

    def _incr(self, key: str, expiry: float, amount: int) -> int:
        now = time.time()
        if self.expirations.get(key, 0) <= now:
            self.counters[key] = 0
            self.expirations[key] = now + expiry
        self.counters[key] += amount
        return self.counters[key]

    async def decr(self, key: str, amount: int = 1) -> int:
        """Subtract `amount` from a live counter, never below zero."""
        value = max(0, await self.get(key) - amount)
        if key in self.counters:
            self.counters[key] = value
        return value

    async def get(self, key: str) -> int:
        """Return a counter's value; zero once it has expired."""
        if self.expirations.get(key, 0) <= time.time():
            return 0
        return self.counters.get(key, 0)

    async def get_expiry(self, key: str) -> float:
        """Return when a counter ends (now if it does not exist)."""
        return self.expirations.get(key, time.time())

    async def check(self) -> bool:
        """Memory is always reachable."""
        return True

    async def reset(self) -> int | None:
        """Forget everything; return how many keys there were."""
        count = max(len(self.counters), len(self.events))
        for mapping in (self.counters, self.expirations, self.events, self.windows):
            mapping.clear()
        return count

    async def clear(self, key: str) -> None:
        """Forget one key."""
        for mapping in (self.counters, self.expirations, self.events, self.windows):
            mapping.pop(key, None)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record `amount` hits unless the last `expiry` seconds already hold `limit - amount`."""
        self._prune_now_and_then()
        if amount > limit:
            return False
        now = time.time()
        events = self.events.setdefault(key, [])
        self.windows[key] = expiry
        if len(events) > limit - amount and events[limit - amount] >= now - expiry:
            return False
        events[:0] = [now] * amount
        del events[limit:]  # older hits can no longer refuse or count against anything
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return the time of the oldest hit in the window and the number of hits in it."""
        now = time.time()
        events = self.events.get(key, [])
        count = _newer_than(events, now - expiry)
        return (events[count - 1], count) if count else (now, 0)

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Count `amount` hits unless the weighted count of two windows would pass `limit`."""
        self._prune_now_and_then()
        if amount > limit:
            return False
        previous, previous_ttl, current, _ = await self.get_sliding_window(key, expiry)
        if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        _, current_key = self.sliding_window_keys(key, expiry, time.time())
        # A window's counter must outlive it: it is the "previous" one during the next.
        self._incr(current_key, 2 * expiry, amount)
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """Return the previous window's count and TTL and the current window's count and TTL."""
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous, current = await self.get(previous_key), await self.get(current_key)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Forget both windows of a key."""
        for window_key in self.sliding_window_keys(key, expiry, time.time()):
            await self.clear(window_key)

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self.prune_interval
            self.prune()

    def prune(self) -> int:
        """Drop expired counters and hits now; return how many keys were dropped."""
        now = time.time()
        dropped = [key for key, ends in self.expirations.items() if ends <= now]
        for key in dropped:
            del self.counters[key], self.expirations[key]
        for key, events in self.events.items():
            del events[_newer_than(events, now - self.windows[key]) :]
        empty = [key for key, events in self.events.items() if not events]
        for key in empty:
            del self.events[key], self.windows[key]
        return len(dropped) + len(empty)


def _newer_than(events: list[float], cutoff: float) -> int:
    """How many of `events` (newest first) happened after `cutoff`."""
    return bisect.bisect_left(events, -cutoff, key=lambda moment: -moment)


def create_rate_limit_storage(redis: Redis | None, *, namespace: str) -> Storage:
    """Return the rate limiter's storage: the shared Redis pool when given, else memory.

    Redis keys start with `ratelimit:<namespace>`, so services sharing one Redis keep separate
    limits. The storage uses the process's one Redis pool and is closed with it.
    """
    if redis is None:
        return PrunedMemoryStorage()
    # With a pool given, `limits` takes connections from it and ignores the URI's address.
    # It passes `connection_pool` on to redis-py; its annotation covers only scalar options.
    pool: Any = redis.connection_pool
    return RedisStorage(
        "async+redis://",
        implementation="redispy",
        key_prefix=f"ratelimit:{namespace}",
        connection_pool=pool,
    )
