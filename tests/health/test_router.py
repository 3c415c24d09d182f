import time

import pytest
from asgi_lifespan import LifespanManager
from httpx2 import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.harness import client_for, make_settings, running

pytestmark = pytest.mark.anyio


async def test_root_health_is_exactly_ok(client: AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.content == b'{"status":"ok"}'


async def test_liveness_is_ok(client: AsyncClient) -> None:
    response = await client.get("/api/v1/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_checks_the_database(client: AsyncClient) -> None:
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"db": "ok"}}


async def test_readiness_checks_redis_when_configured(
    settings: Settings, redis_url_or_skip: str
) -> None:
    settings = make_settings(DATABASE_URL=settings.database.url, REDIS_URL=redis_url_or_skip)
    async with running(create_app(settings)) as app, client_for(app) as client:
        response = await client.get("/api/v1/health/ready")
    assert response.status_code == 200
    checks = {"db": "ok", "redis": "ok", "jobs_queue": "ok"}  # the broker is REDIS_URL
    assert response.json() == {"status": "ok", "checks": checks}


async def test_readiness_stays_200_degraded_while_redis_is_down(
    settings: Settings, closed_port: int
) -> None:
    """Every use of Redis fails open: the replica still serves, so it stays in rotation."""
    redis_url = f"redis://127.0.0.1:{closed_port}/0"
    settings = make_settings(DATABASE_URL=settings.database.url, REDIS_URL=redis_url)
    async with running(create_app(settings)) as app, client_for(app) as client:
        response = await client.get("/api/v1/health/ready")
        served = await client.get("/api/v1/meta")
    assert response.status_code == 200
    expected = {"db": "ok", "redis": "error", "jobs_queue": "error"}  # the broker is REDIS_URL
    assert response.json() == {"status": "degraded", "checks": expected}
    assert served.status_code == 200


@pytest.mark.parametrize(
    ("limiter_on", "verdict", "status"),
    [(True, "error", 503), (False, "degraded", 200)],
    ids=["fail-closed limiter on", "fail-closed limiter off"],
)
async def test_readiness_fails_only_when_the_rate_limiter_needs_the_redis_that_is_down(
    settings: Settings, closed_port: int, limiter_on: bool, verdict: str, status: int
) -> None:
    """A fail-closed limiter refuses every request it cannot count: that replica cannot serve."""
    settings = make_settings(
        DATABASE_URL=settings.database.url,
        REDIS_URL=f"redis://127.0.0.1:{closed_port}/0",
        RATE_LIMIT_ENABLED=limiter_on,
        RATE_LIMIT_FAIL_OPEN=False,
    )
    async with running(create_app(settings)) as app, client_for(app) as client:
        response = await client.get("/api/v1/health/ready")
        served = await client.get("/api/v1/items")
    assert response.status_code == status
    expected = {"db": "ok", "redis": "error", "jobs_queue": "error"}
    assert response.json() == {"status": verdict, "checks": expected}
    # What readiness says: refused for want of Redis, or served (401: no token sent).
    assert served.status_code == (503 if limiter_on else 401)


async def test_readiness_answers_within_3_seconds_when_the_database_hangs(
    silent_port: int,
) -> None:
    settings = make_settings(DATABASE_URL=f"postgresql+asyncpg://app@127.0.0.1:{silent_port}/app")
    app = create_app(settings)
    async with LifespanManager(app), client_for(app) as client:
        started = time.monotonic()
        response = await client.get("/api/v1/health/ready")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json() == {"status": "error", "checks": {"db": "error"}}
    assert elapsed < 3


async def test_meta_names_the_running_service(client: AsyncClient, settings: Settings) -> None:
    response = await client.get("/api/v1/meta")
    assert response.status_code == 200
    body = response.json()
    assert body == {"name": settings.app.name, "version": body["version"], "environment": "test"}
    assert body["version"].count(".") >= 2


async def test_each_readiness_check_gives_up_after_the_health_check_timeout(
    silent_port: int,
) -> None:
    settings = make_settings(
        DATABASE_URL=f"postgresql+asyncpg://app@127.0.0.1:{silent_port}/app",
        HEALTH_CHECK_TIMEOUT=0.2,
    )
    app = create_app(settings)
    async with LifespanManager(app), client_for(app) as client:
        started = time.monotonic()
        response = await client.get("/api/v1/health/ready")
        elapsed = time.monotonic() - started
    assert response.json() == {"status": "error", "checks": {"db": "error"}}
    # The default (1 s) would still be waiting: the setting, not another timeout, answered.
    assert 0.2 <= elapsed < 0.8
