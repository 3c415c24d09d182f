"""Reading through the cache: cached reads and their invalidation, for any `Cache` backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from fastapi import BackgroundTasks
from pydantic import BaseModel

if TYPE_CHECKING:  # app.infra.cache re-exports these helpers, so it cannot be imported here
    from app.infra.cache import Cache

M = TypeVar("M", bound=BaseModel)


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
