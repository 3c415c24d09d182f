"""The Redis client: one connection pool per process, created in lifespan."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from app.core.config import Settings
from app.core.errors import ServiceUnavailableError


def create_redis(settings: Settings) -> Redis | None:
    """Return a client for `REDIS_URL`, or None when Redis is not configured."""
    if settings.REDIS_URL is None:
        return None
    return Redis.from_url(
        settings.REDIS_URL.get_secret_value(),
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


async def get_redis(request: Request) -> Redis:
    """Return the process's Redis client; 503 when the route needs Redis and none is set."""
    redis: Redis | None = request.app.state.redis
    if redis is None:
        raise ServiceUnavailableError("Redis is not configured (set REDIS_URL).")
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
