"""The Redis client: one guarded connection pool per process, shared by everything that uses Redis.

The rate limiter, the cache, the idempotency locks and the login throttle all take their
connections from this pool, so its circuit breaker guards every one of them: once Redis has
failed or timed out `REDIS_BREAKER_FAILURES` times in a row, commands are refused at once
(`CircuitOpenError`, a `redis.exceptions.ConnectionError`, which every caller already handles)
until one probe after `REDIS_BREAKER_COOL_DOWN_SECONDS` finds Redis answering again.
"""

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core.circuit import CircuitBreaker
from app.core.settings_groups import RedisSettings

HEALTH_CHECK_INTERVAL_SECONDS = 30


class CircuitOpenError(RedisConnectionError):
    """Refused without asking Redis: it failed a moment ago and is left alone for a while."""


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class GuardedConnectionPool(BlockingConnectionPool):
    """A blocking pool whose connections are handed out only while its breaker allows it.

    Blocking: past `max_connections` a caller waits up to `timeout` for a free connection
    (then `ConnectionError`), instead of redis-py's default pool raising `MaxConnectionsError`
    at once. A command that fails talking to Redis (an error or a timeout) disconnects its
    connection before handing it back, so `release` tells the breaker how each call went.
    Waiting for a free connection is not a Redis failure and is not counted; nor is a call
    cut short because its request was cancelled (a deadline), which says nothing about Redis.
    """

    def __init__(self, *, breaker: CircuitBreaker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.breaker = breaker

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """Return a connected connection, or raise `CircuitOpenError` while Redis rests."""
        if not self.breaker.allow():
            raise CircuitOpenError("Redis failed a moment ago; it is left alone for a while.")
        connection: AbstractConnection = await super().get_connection(  # type: ignore[no-untyped-call]
            *args, **kwargs
        )
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        """Hand a connection back, reporting whether its command reached Redis."""
        if connection.is_connected:
            self.breaker.succeeded()
        elif not _cancelling():
            self.breaker.failed()
        await super().release(connection)


def create_redis(settings: RedisSettings) -> Redis | None:
    """Return a client for `REDIS_URL`, or None when Redis is not configured.

    Nothing connects until the first command. One immediate retry (no backoff) rides over a
    connection Redis closed when it restarted; timeouts are never retried, since a retry would
    double the wait on a Redis that hangs.
    """
    if settings.url is None:
        return None
    breaker = CircuitBreaker(
        "redis",
        failure_threshold=settings.breaker_failures,
        cool_down=settings.breaker_cool_down_seconds,
    )
    pool = GuardedConnectionPool.from_url(
        settings.url.get_secret_value(),
        breaker=breaker,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        socket_connect_timeout=settings.socket_timeout,
        socket_timeout=settings.socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)


def breaker_of(redis: Redis | None) -> CircuitBreaker | None:
    """Return the circuit breaker guarding a client built by `create_redis` (None otherwise)."""
    pool = redis.connection_pool if redis is not None else None
    return pool.breaker if isinstance(pool, GuardedConnectionPool) else None
