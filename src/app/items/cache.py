"""The cached copy of an item's representation: its key, reads and invalidation."""

import uuid
from collections.abc import Awaitable, Callable

from fastapi import BackgroundTasks

from app.infra.cache import Cache
from app.infra.read_through import invalidate, read_through
from app.items.schemas import ItemRead


def key(item_id: uuid.UUID) -> str:
    """Where the cache keeps an item's representation."""
    return f"items:{item_id}"


async def read(
    cache: Cache,
    item_id: uuid.UUID,
    load: Callable[[], Awaitable[ItemRead | None]],
    *,
    visible: Callable[[ItemRead], bool],
) -> ItemRead | None:
    """Return the item if the caller may see it, from the cache or loaded (then cached)."""
    return await read_through(cache, key(item_id), ItemRead, load, visible=visible)


async def forget(cache: Cache, background: BackgroundTasks, *item_ids: uuid.UUID) -> None:
    """Drop the cached copies after the items changed (again once the response is sent)."""
    if item_ids:
        await invalidate(cache, background, *(key(item_id) for item_id in item_ids))
