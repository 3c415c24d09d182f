"""A short Redis lock around claiming a key: fewer doomed inserts when workers race for it."""

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

LOCK_PREFIX = "idempotency:lock:"
# Long enough for one claim transaction, short enough that a dead worker's lock soon lapses.
LOCK_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)


def lock_name(user_id: uuid.UUID, key: str) -> str:
    """Return the Redis key of the lock on (caller, key); the key is hashed to bound its size."""
    return f"{LOCK_PREFIX}{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"


@asynccontextmanager
async def claim_lock(redis: Redis | None, *, user_id: uuid.UUID, key: str) -> AsyncIterator[bool]:
    """Hold the lock on (caller, key) while claiming; yield False when another worker holds it.

    Without Redis, or when Redis fails, yield True: the database's unique constraint alone
    keeps claims exclusive, the lock only spares it the contention.
    """
    if redis is None:
        yield True
        return
    lock = redis.lock(
        lock_name(user_id, key), timeout=LOCK_TIMEOUT_SECONDS, blocking=False, thread_local=False
    )
    acquired: bool | None
    try:
        acquired = bool(await lock.acquire())
    except RedisError as exc:
        log.warning("idempotency_lock_unavailable", error=type(exc).__name__)
        acquired = None
    if acquired is None:
        yield True  # fail open
        return
    try:
        yield acquired
    finally:
        if acquired:
            await _release(lock)


async def _release(lock: Lock) -> None:
    try:
        await lock.release()
    except (LockError, RedisError) as exc:
        # Expired (the claim outlived the timeout) or Redis went away: the lock lapses by itself.
        log.warning("idempotency_lock_release_failed", error=type(exc).__name__)
