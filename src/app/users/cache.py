"""The cached copy of an account's public representation: its key, reads and invalidation."""

import uuid
from collections.abc import Awaitable, Callable

from fastapi import BackgroundTasks

from app.infra.cache import Cache, invalidate, read_through
from app.items import cache as items_cache
from app.users.schemas import UserRead


def key(user_id: uuid.UUID) -> str:
    """Where the cache keeps an account's public representation."""
    return f"users:{user_id}"


async def read(
    cache: Cache, user_id: uuid.UUID, load: Callable[[], Awaitable[UserRead | None]]
) -> UserRead | None:
    """Return the account's representation from the cache, or `load` it and cache it."""
    return await read_through(cache, key(user_id), UserRead, load)


async def forget(cache: Cache, background: BackgroundTasks, user_id: uuid.UUID) -> None:
    """Drop the cached copy after the account changed (again once the response is sent)."""
    await invalidate(cache, background, key(user_id))


async def forget_account(
    cache: Cache, background: BackgroundTasks, user_id: uuid.UUID, item_ids: list[uuid.UUID]
) -> None:
    """Drop the copies of a deleted account and of its items (`item_ids`, read before it went).

    The items' rows go with the account (ON DELETE CASCADE): a cached copy would outlive them
    for a superuser's reads until its TTL.
    """
    await forget(cache, background, user_id)
    await items_cache.forget(cache, background, *item_ids)
