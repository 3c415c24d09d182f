"""Shared dependencies: the app-wide objects a route may ask for, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.db.session import SessionDep
from app.infra.cache import Cache
from app.infra.redis import RedisDep

__all__ = ["CacheDep", "EngineDep", "OptionalRedisDep", "RedisDep", "SessionDep", "SettingsDep"]


async def get_app_settings(request: Request) -> Settings:
    """Return the settings the app was built with (tests pass their own)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    """Return the process's database engine."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_optional_redis(request: Request) -> Redis | None:
    """Return the Redis client, or None when `REDIS_URL` is not set."""
    redis: Redis | None = request.app.state.redis
    return redis


async def get_cache(request: Request) -> Cache:
    """Return the process's cache: Redis when `REDIS_URL` is set, else in memory."""
    cache: Cache = request.app.state.cache
    return cache


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
OptionalRedisDep = Annotated[Redis | None, Depends(get_optional_redis)]
CacheDep = Annotated[Cache, Depends(get_cache)]
