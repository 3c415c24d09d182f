"""The auth tests' settings (a JWT secret long enough for every HMAC algorithm) and Redis."""

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.config import Settings
from tests.harness import make_settings
from tests.identity import JWT_SECRET


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The suite's settings with a JWT secret of a proper length."""
    return make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET)


@pytest.fixture
async def redis(redis_url_or_skip: str) -> AsyncIterator[Redis]:
    """A client of the test Redis, closed afterwards."""
    client = Redis.from_url(redis_url_or_skip)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test:login-failures:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
