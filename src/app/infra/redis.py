"""The Redis client: one connection pool per process, shared by everything that uses Redis."""

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.settings_groups import RedisSettings

HEALTH_CHECK_INTERVAL_SECONDS = 30


def create_redis(settings: RedisSettings) -> Redis | None:
    """Return a client for `REDIS_URL`, or None when Redis is not configured.

    Nothing connects until the first command. One immediate retry (no backoff) rides over
    connections Redis closed when it restarted; more would multiply a timeout per request.
    """
    if settings.url is None:
        return None
    return Redis.from_url(
        settings.url.get_secret_value(),
        socket_connect_timeout=settings.socket_timeout,
        socket_timeout=settings.socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
