"""The cache: one interface, a bounded in-memory backend and a Redis backend that fails open.

Values are bytes (callers serialise, e.g. with pydantic's `model_dump_json()`) and every entry
has a time to live. The TTL is what bounds staleness: an invalidation that fails, or a read that
stores a value loaded just before a concurrent write, leaves a stale entry until it expires.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.settings_groups import CacheSettings
from app.infra.read_through import cached, invalidate, read_through
from app.infra.redis import CircuitOpenError

# The read helpers live in read_through.py; some domains import them from here.
__all__ = [
    "CACHE_ERRORS",
    "Cache",
    "MemoryCache",
    "NullCache",
    "RedisCache",
    "cached",
    "create_cache",
    "invalidate",
    "read_through",
]

log = structlog.get_logger(__name__)

# Redis errors, and socket errors (builtin ConnectionError and TimeoutError are OSErrors).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)

# What `on_result` hears: a read found its value (hit) or not (miss); a Redis call failed
# (error); the Redis client's circuit breaker refused a call at once, Redis having failed a
# moment ago (skipped).
HIT, MISS, ERROR, SKIPPED = "hit", "miss", "error", "skipped"


def _ignore(_: str) -> None:
    pass


class Cache(Protocol):
    """A byte cache whose entries expire; reads that fail are misses."""

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing or expired."""

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds (the cache's default when None)."""

    async def delete(self, *keys: str) -> None:
        """Remove `keys`; keys that are not stored are ignored."""


def _checked_ttl(ttl: int) -> int:
    # A programming error, raised even by the fail-open backend rather than hidden as a miss.
    if ttl < 1:
        raise ValueError(f"ttl must be at least one second, not {ttl!r}.")
    return ttl


class _Entry(NamedTuple):
    value: bytes
    expires_at: float
    ttl: int


class MemoryCache:
    """A per-process cache of at most `max_entries` entries, least recently used evicted first.

    Every operation is O(1) and there is no background task. Expired entries are dropped when
    read, and are the first to go when the cache is full: keys are also kept in one queue per
    TTL, where insertion order is expiry order, so the oldest expired entry is found at the head
    of a queue (callers use a handful of distinct TTLs). With several workers, each process has
    its own cache, so one worker's invalidation does not reach the others' copies.
    `on_result` hears `hit` or `miss` for each read (metrics count them).
    """

    def __init__(
        self,
        *,
        max_entries: int,
        default_ttl: int,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[str], None] = _ignore,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1.")
        self.max_entries = max_entries
        self.default_ttl = _checked_ttl(default_ttl)
        self._clock = clock
        self._on_result = on_result
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._expiry_queues: dict[int, OrderedDict[str, None]] = {}  # per TTL, oldest first

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing or expired."""
        entry = self._entries.get(key)
        if entry is None:
            self._on_result(MISS)
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            self._on_result(MISS)
            return None
        self._entries.move_to_end(key)
        self._on_result(HIT)
        return entry.value

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds, evicting an entry when full."""
        ttl = self.default_ttl if ttl is None else _checked_ttl(ttl)
        now = self._clock()
        if key in self._entries:
            self._remove(key)
        self._entries[key] = _Entry(value, now + ttl, ttl)
        self._expiry_queues.setdefault(ttl, OrderedDict())[key] = None
        if len(self._entries) > self.max_entries:
            victim = self._oldest_expired(now)
            self._remove(next(iter(self._entries)) if victim is None else victim)

    async def delete(self, *keys: str) -> None:
        """Remove `keys`; keys that are not stored are ignored."""
        for key in keys:
            if key in self._entries:
                self._remove(key)

    def _oldest_expired(self, now: float) -> str | None:
        for queue in self._expiry_queues.values():
            key = next(iter(queue))
            if self._entries[key].expires_at <= now:
                return key
        return None

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        queue = self._expiry_queues[entry.ttl]
        del queue[key]
        if not queue:
            del self._expiry_queues[entry.ttl]


class RedisCache:
    """A cache in Redis, shared by every worker; Redis failures are misses, never errors.

    Keys are stored under `prefix`. A failed read returns None, a failed write or delete is
    dropped; each failure is counted in `errors` and logged as `cache_error` with the operation
    and error type (never keys or values); the log collapses repeats. Leaving a failing Redis
    alone is the client's job: its circuit breaker refuses commands at once for a while, so an
    unreachable Redis does not slow every request; a call it refuses is skipped, neither
    counted nor logged (the breaker logs its opening). A failed or skipped invalidation leaves
    a stale entry for up to its TTL. `on_result` hears `hit` or `miss` for each read, `error`
    for each failed call and `skipped` for each one the breaker refused.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        default_ttl: int,
        on_result: Callable[[str], None] = _ignore,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.default_ttl = _checked_ttl(default_ttl)
        self._on_result = on_result
        # Failed Redis calls in this process (`cache_requests_total{result="error"}` adds them up).
        self.errors = 0

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing or Redis fails."""
        try:
            value = await self.redis.get(self.prefix + key)
        except CACHE_ERRORS as exc:
            self._failed("get", exc)
            return None
        if value is None or isinstance(value, bytes):
            self._on_result(MISS if value is None else HIT)
            return value
        raise TypeError("RedisCache needs a client with decode_responses off.")

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds; nothing happens when Redis fails."""
        ttl = self.default_ttl if ttl is None else _checked_ttl(ttl)
        try:
            await self.redis.set(self.prefix + key, value, ex=ttl)
        except CACHE_ERRORS as exc:
            self._failed("set", exc)

    async def delete(self, *keys: str) -> None:
        """Remove `keys` in one call; when Redis fails they stay until their TTL ends."""
        if not keys:
            return
        try:
            await self.redis.delete(*(self.prefix + key for key in keys))
        except CACHE_ERRORS as exc:
            self._failed("delete", exc)

    def _failed(self, operation: str, exc: Exception) -> None:
        if isinstance(exc, CircuitOpenError):
            self._on_result(SKIPPED)  # Redis was left alone: nothing failed here
            return
        self.errors += 1
        self._on_result(ERROR)
        # The message may name the host; the type says enough to start looking.
        log.warning(
            "cache_error", operation=operation, error_type=type(exc).__name__, errors=self.errors
        )


class NullCache:
    """A cache that keeps nothing: every read misses (CACHE_ENABLED=false)."""

    async def get(self, key: str) -> bytes | None:
        """Miss."""
        return None

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        """Keep nothing."""

    async def delete(self, *keys: str) -> None:
        """Nothing to drop."""


def create_cache(
    settings: CacheSettings,
    redis: Redis | None,
    *,
    namespace: str,
    on_result: Callable[[str], None] = _ignore,
) -> Cache:
    """Return a Redis cache when a client is given, else a bounded in-memory one.

    Redis keys start with `cache:<namespace>:`, so services sharing one Redis keep apart.
    `on_result` hears the result of each call (see `HIT`); a disabled cache makes no calls.
    """
    if not settings.enabled:
        return NullCache()
    if redis is not None:
        prefix = f"cache:{namespace}:"
        return RedisCache(
            redis, prefix=prefix, default_ttl=settings.ttl_seconds, on_result=on_result
        )
    return MemoryCache(
        max_entries=settings.max_entries, default_ttl=settings.ttl_seconds, on_result=on_result
    )
