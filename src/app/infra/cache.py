"""The cache: one interface, a bounded in-memory backend and a Redis backend that fails open.

Values are bytes (callers serialise, e.g. with pydantic's `model_dump_json()`) and every entry
has a time to live. The TTL is what bounds staleness: an invalidation that fails, or a read that
stores a value loaded just before a concurrent write, leaves a stale entry until it expires.
"""

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol, TypeVar

import structlog
from fastapi import BackgroundTasks
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.backoff import Backoff
from app.core.settings_groups import CacheSettings

log = structlog.get_logger(__name__)

# Redis errors, and socket errors (builtin ConnectionError and TimeoutError are OSErrors).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)

M = TypeVar("M", bound=BaseModel)


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
    """

    def __init__(
        self,
        *,
        max_entries: int,
        default_ttl: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1.")
        self.max_entries = max_entries
        self.default_ttl = _checked_ttl(default_ttl)
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._expiry_queues: dict[int, OrderedDict[str, None]] = {}  # per TTL, oldest first

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
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
    dropped; each failure is counted in `errors` and logged as `cache_error`, at most once every
    few seconds, with the operation and error type (never keys or values). After a failure,
    reads and writes leave Redis alone for `retry_interval` seconds, so an unreachable Redis
    does not slow every request. Deletes are always tried: a skipped invalidation would leave a
    stale entry for up to its TTL, which a failed one does too.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        default_ttl: int,
        retry_interval: float = 1.0,
    ) -> None:
        if retry_interval < 0:
            raise ValueError("retry_interval must be zero or more seconds.")
        self.redis = redis
        self.prefix = prefix
        self.default_ttl = _checked_ttl(default_ttl)
        self.backoff = Backoff(retry_interval)

    @property
    def errors(self) -> int:
        """Process-wide count of failed Redis calls, for metrics."""
        return self.backoff.failures

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing or Redis fails."""
        if self.backoff.resting():
            return None
        try:
            value = await self.redis.get(self.prefix + key)
        except CACHE_ERRORS as exc:
            self._failed("get", exc)
            return None
        if value is None or isinstance(value, bytes):
            return value
        raise TypeError("RedisCache needs a client with decode_responses off.")

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds; nothing happens when Redis fails."""
        ttl = self.default_ttl if ttl is None else _checked_ttl(ttl)
        if self.backoff.resting():
            return
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
        if self.backoff.failed():
            # The message may name the host; the type says enough to start looking.
            log.warning(
                "cache_error",
                operation=operation,
                error_type=type(exc).__name__,
                errors=self.errors,
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


def create_cache(settings: CacheSettings, redis: Redis | None, *, namespace: str) -> Cache:
    """Return a Redis cache when a client is given, else a bounded in-memory one.

    Redis keys start with `cache:<namespace>:`, so services sharing one Redis keep apart.
    """
    if not settings.enabled:
        return NullCache()
    if redis is not None:
        prefix = f"cache:{namespace}:"
        return RedisCache(redis, prefix=prefix, default_ttl=settings.ttl_seconds)
    return MemoryCache(max_entries=settings.max_entries, default_ttl=settings.ttl_seconds)


async def cached(
    cache: Cache,
    key: str,
    load: Callable[[], Awaitable[bytes | None]],
    ttl: int | None = None,
) -> bytes | None:
    """Return the cached value of `key`, or call `load` and cache what it returns (unless None).

    Call it after authorization, with a key that names the resource, never the caller.
    """
    value = await cache.get(key)
    if value is None:
        value = await load()
        if value is not None:
            await cache.set(key, value, ttl)
    return value


def _always(_: object) -> bool:
    return True


async def read_through(
    cache: Cache,
    key: str,
    schema: type[M],
    load: Callable[[], Awaitable[M | None]],
    *,
    visible: Callable[[M], bool] = _always,
    ttl: int | None = None,
) -> M | None:
    """Return the `schema` cached under `key`, or `load` it and cache it.

    `visible` is the caller's authorization: a representation it refuses comes back as None,
    as if it did not exist, and a freshly loaded one it refuses is not stored, so a refused
    read never fills the cache. Keys name the resource, never the caller.
    """
    raw = await cache.get(key)
    if raw is not None:
        cached_value = schema.model_validate_json(raw)
        return cached_value if visible(cached_value) else None
    value = await load()
    if value is None or not visible(value):
        return None
    await cache.set(key, value.model_dump_json().encode(), ttl)
    return value


async def invalidate(cache: Cache, background: BackgroundTasks, *keys: str) -> None:
    """Drop `keys` now, and again once the response is sent (after the request committed).

    The second delete catches a read that raced the write and cached the old version; if
    both fail (Redis down), the TTL bounds how long the old version is served.
    """
    await cache.delete(*keys)
    background.add_task(cache.delete, *keys)
