"""The process's resources: built once, connected only when used, closed in reverse order."""

import uuid
from importlib.metadata import version
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.quotas import Quota
from app.deps import resources_of
from app.infra.cache import MemoryCache, RedisCache
from app.infra.rate_limit_redis import RedisQuotaStore
from app.infra.rate_limit_storage import MemoryQuotaStore
from app.main import create_app
from app.resources import Resources, build_resources, close_resources
from tests.harness import make_settings, running

pytestmark = pytest.mark.anyio

VERSION = version("production-fastapi-backend")


async def test_building_connects_to_nothing(closed_port: int, tmp_path: Any) -> None:
    # Every address is dead: construction must not notice.
    settings = make_settings(
        DATABASE_URL=f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port}/none",
        REDIS_URL=f"redis://127.0.0.1:{closed_port}/0",
    )
    resources = build_resources(settings, version=VERSION)
    assert resources.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    await close_resources(resources)


async def test_without_redis_every_backend_is_in_process() -> None:
    resources = build_resources(make_settings(), version=VERSION)
    try:
        assert resources.redis is None
        assert isinstance(resources.cache, MemoryCache)
        assert isinstance(resources.rate_limit_storage, MemoryQuotaStore)
        assert resources.oidc_verifier is None
    finally:
        await close_resources(resources)


async def test_with_redis_the_cache_and_rate_limiter_share_one_pool(
    redis_url_or_skip: str,
) -> None:
    resources = build_resources(make_settings(REDIS_URL=redis_url_or_skip), version=VERSION)
    try:
        assert resources.redis is not None
        pool = resources.redis.connection_pool
        assert isinstance(resources.cache, RedisCache)
        assert resources.cache.redis is resources.redis
        storage = resources.rate_limit_storage
        assert isinstance(storage, RedisQuotaStore)
        assert storage.redis.connection_pool is pool
        # The shared pool really reaches Redis.
        assert (await storage.hit(f"test:{uuid.uuid4()}", [Quota("minute", 1, 60)])).allowed
    finally:
        await close_resources(resources)


async def test_outbound_requests_name_the_service_and_its_version() -> None:
    resources = build_resources(make_settings(APP_NAME="Acme Orders"), version=VERSION)
    try:
        assert resources.http.headers["user-agent"] == f"acme-orders/{VERSION}"
    finally:
        await close_resources(resources)


async def test_resources_are_frozen_and_replaced_whole() -> None:
    resources = build_resources(make_settings(), version=VERSION)
    try:
        with pytest.raises(AttributeError):
            resources.redis = None  # type: ignore[misc]
        swapped = resources.replace(version="other")
        assert isinstance(swapped, Resources)
        assert (swapped.version, resources.version) == ("other", VERSION)
        assert swapped.engine is resources.engine
    finally:
        await close_resources(resources)


async def test_closing_goes_in_reverse_order_of_construction(
    monkeypatch: pytest.MonkeyPatch, redis_url_or_skip: str
) -> None:
    resources = build_resources(make_settings(REDIS_URL=redis_url_or_skip), version=VERSION)
    closed: list[str] = []
    # The classes, not the objects: the engine's attributes are read-only slots.
    for name, cls, method in (
        ("engine", AsyncEngine, "dispose"),
        ("redis", Redis, "aclose"),
        ("http", httpx2.AsyncClient, "aclose"),
    ):
        original = getattr(cls, method)

        async def record(
            self: Any, *args: Any, _name: str = name, _original: Any = original
        ) -> None:
            closed.append(_name)
            await _original(self, *args)

        monkeypatch.setattr(cls, method, record)
    await close_resources(resources)
    assert closed == ["http", "redis", "engine"]
    assert resources.http.is_closed


async def test_the_app_closes_its_resources_when_it_stops(settings: Any) -> None:
    app: FastAPI = create_app(settings)
    resources = resources_of(app)
    async with running(app):
        assert not resources.http.is_closed
    assert resources.http.is_closed
