"""Where the rate limiter keeps its counts: in process, or in the shared Redis.

Both stores implement `core.quotas.QuotaStore` with the same two strategies and the same
all-or-nothing rule: a request is counted in every quota only if each allows it, so one
refused by a later (longer) window leaves the earlier ones untouched. Every quota is checked
even after one refuses: the refusal reported is the one whose slot frees last.

- moving-window: exact. One timestamp per accepted request; a quota allows a request while
  fewer than `limit` of them are newer than `seconds` ago. In memory a hit costs the same
  however many requests the window holds: timestamps are kept oldest first in a deque, new
  ones appended and expired ones dropped from the front.
- sliding-window-counter: approximate and cheaper. Two counts per quota, this fixed window's
  and the previous one's; the previous count weighs by the share of it the sliding window
  still covers: `floor(previous * left / seconds + current)` must stay below `limit`.
"""

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from app.core.quotas import STRATEGIES, Decision, Quota, QuotaStore, Strategy
from app.infra.rate_limit_redis import RedisQuotaStore


@dataclass(slots=True)
class _Counts:
    """One quota's sliding-window counters: fixed window `index` and the one before."""

    seconds: int
    index: int
    current: int
    previous: int


class MemoryQuotaStore:
    """Counts in this process's memory: each worker counts on its own.

    `hit` does not await between reading the counts and updating them, so requests on one
    event loop need no lock. Expired timestamps and counters are dropped by a sweep at most
    once every `prune_interval` seconds, so memory stays bounded by the clients seen within
    the longest window.
    """

    def __init__(self, strategy: Strategy = "moving-window", prune_interval: float = 10.0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, not {strategy!r}.")
        if prune_interval < 0:
            raise ValueError("prune_interval must be zero or more seconds.")
        self.strategy = strategy
        self.prune_interval = prune_interval
        self.events: dict[str, deque[float]] = {}  # moving-window hits, oldest first
        self.windows: dict[str, int] = {}  # each event list's window, in seconds
        self.counts: dict[str, _Counts] = {}  # sliding-window counters
        self._next_prune = time.monotonic() + prune_interval

    async def hit(self, key: str, quotas: Sequence[Quota]) -> Decision:
        """Count one request of `key` in every quota if each allows it, else in none."""
        self._prune_now_and_then()
        if self.strategy == "moving-window":
            return self._hit_moving(key, quotas, time.time())
        return self._hit_sliding(key, quotas, time.time())

    def _hit_moving(self, key: str, quotas: Sequence[Quota], now: float) -> Decision:
        checked = []
        refusal: Decision | None = None
        for quota in quotas:
            name = _key(key, quota)
            events = self.events.get(name) or deque()
            _expire(events, now - quota.seconds)
            in_window = len(events)  # only accepted hits are kept: at most the limit
            if in_window >= quota.limit:
                # A slot frees as the limit-th newest hit leaves the window.
                reset = events[in_window - quota.limit] + quota.seconds - now
                refusal = _longer_wait(refusal, quota, reset)
            checked.append((quota, name, events, in_window))
        if refusal is not None:
            return refusal
        decision: Decision | None = None
        for quota, name, events, in_window in checked:
            events.append(now)
            self.events[name] = events
            self.windows[name] = quota.seconds
            left = quota.limit - in_window - 1
            if decision is None or left < decision.remaining:
                decision = Decision(True, quota, left, events[0] + quota.seconds - now)
        assert decision is not None  # noqa: S101 - at least one quota  # nosec B101
        return decision

    def _hit_sliding(self, key: str, quotas: Sequence[Quota], now: float) -> Decision:
        found = []
        refusal: Decision | None = None
        for quota in quotas:
            index = math.floor(now / quota.seconds)
            counts = self.counts.get(_key(key, quota))
            previous, current = _shifted(counts, index)
            left = (index + 1) * quota.seconds - now  # of this fixed window
            if math.floor(previous * left / quota.seconds + current) + 1 > quota.limit:
                reset = _sliding_reset(quota.seconds, previous, current, left)
                refusal = _longer_wait(refusal, quota, reset)
            found.append((quota, index, previous, current, left))
        if refusal is not None:
            return refusal
        decision: Decision | None = None
        for quota, index, previous, current, left in found:
            self.counts[_key(key, quota)] = _Counts(quota.seconds, index, current + 1, previous)
            remaining = quota.limit - math.floor(previous * left / quota.seconds + current + 1)
            if decision is None or remaining < decision.remaining:
                reset = _sliding_reset(quota.seconds, previous, current + 1, left)
                decision = Decision(True, quota, remaining, reset)
        assert decision is not None  # noqa: S101 - at least one quota  # nosec B101
        return decision

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self.prune_interval
            self.prune()

    def prune(self) -> int:
        """Drop expired hits and counters now; return how many keys were dropped."""
        now = time.time()
        for key, events in self.events.items():
            _expire(events, now - self.windows[key])
        empty = [key for key, events in self.events.items() if not events]
        for key in empty:
            del self.events[key], self.windows[key]
        # A window's count matters during it and, as the previous one, during the next.
        stale = [
            key
            for key, counts in self.counts.items()
            if counts.index < math.floor(now / counts.seconds) - 1
        ]
        for key in stale:
            del self.counts[key]
        return len(empty) + len(stale)


def _longer_wait(refusal: Decision | None, quota: Quota, reset: float) -> Decision:
    """The refusal to report so far: `quota`'s, unless `refusal` waits as long or longer.

    Retry-After must cover every quota that refuses, or a client that waits as told is refused
    again by another one; of equal waits the first quota is kept. The Redis scripts choose alike.
    """
    if refusal is None or reset > refusal.reset_after:
        return Decision(False, quota, 0, reset)
    return refusal


def _key(key: str, quota: Quota) -> str:
    return f"{quota.name}:{quota.seconds}:{key}"


def _expire(events: deque[float], cutoff: float) -> None:
    """Drop the hits (oldest first) that happened at or before `cutoff`: out of the window."""
    while events and events[0] <= cutoff:
        events.popleft()


def _shifted(counts: _Counts | None, index: int) -> tuple[int, int]:
    """The previous and current counts as seen from fixed window `index`."""
    if counts is None or counts.index < index - 1:
        return 0, 0
    if counts.index == index - 1:
        return counts.current, 0
    return counts.previous, counts.current


def _sliding_reset(seconds: int, previous: int, current: int, left: float) -> float:
    """Seconds before the weighted count drops by one (`left`: of the current fixed window).

    The previous window's weight shrinks by one request every `seconds / previous`; the
    current window's count starts to shrink only when this fixed window ends. The Redis
    script computes the same.
    """
    candidates = []
    if previous:
        candidates.append(left % (seconds / previous))
    if current:
        candidates.append(left % seconds)
    return min(candidates, default=0.0)


def create_rate_limit_storage(
    redis: Redis | None, *, namespace: str, strategy: Strategy = "moving-window"
) -> QuotaStore:
    """Return the rate limiter's store: the shared Redis pool when given, else memory.

    Redis keys start with `ratelimit:<namespace>:`, so services sharing one Redis keep
    separate counts. The store uses the process's one Redis client and is closed with it.
    """
    if redis is None:
        return MemoryQuotaStore(strategy)
    return RedisQuotaStore(redis, prefix=f"ratelimit:{namespace}:", strategy=strategy)
