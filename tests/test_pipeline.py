"""The request pipeline (app/pipeline.py): rate-limit options built from the settings."""

import re
from pathlib import Path

import pytest

from app.api import ROUTE_PATHS
from app.core.quotas import Quota
from app.infra.rate_limit_redis import RedisQuotaStore
from app.infra.rate_limit_storage import MemoryQuotaStore, create_rate_limit_storage
from app.infra.redis import create_redis
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import ClientKey
from app.pipeline import rate_limit_options
from tests.harness import make_settings
from tests.middleware.apps import RENDERER
from tests.middleware.rate_limit_apps import Calls

pytestmark = pytest.mark.anyio


def test_options_from_settings_use_memory_and_add_the_burst_to_the_minute() -> None:
    settings = make_settings(
        RATE_LIMIT_PER_MINUTE=60,
        RATE_LIMIT_BURST=10,
        RATE_LIMIT_PER_HOUR=1000,
        RATE_LIMIT_AUTH_PER_MINUTE=5,
        RATE_LIMIT_STRATEGY="sliding-window-counter",
        RATE_LIMIT_FAIL_OPEN=False,
    )
    storage = create_rate_limit_storage(
        None, namespace=settings.app.slug, strategy=settings.rate_limit.strategy
    )
    options = rate_limit_options(settings, renderer=RENDERER, storage=storage, paths=ROUTE_PATHS)
    assert isinstance(options["store"], MemoryQuotaStore)
    assert options["store"].strategy == "sliding-window-counter"
    assert options["auth_routes"] == ROUTE_PATHS.credentials
    assert options["limits"] == (Quota("minute", 70, 60), Quota("hour", 1000, 3600))
    assert options["auth_limits"] == (Quota("auth", 5, 60),)
    assert options["fail_open"] is False
    limited = RateLimitMiddleware(Calls().app(), **options)
    assert limited.policy.header == b'"minute";q=70;w=60, "hour";q=1000;w=3600'


@pytest.mark.parametrize(
    "url",
    ["redis://:pw@127.0.0.1:1/3", "rediss://127.0.0.1:1/0", "unix:///tmp/redis-test.sock?db=2"],
)
async def test_options_from_settings_use_redis_when_it_is_set(url: str) -> None:
    settings = make_settings(REDIS_URL=url, APP_NAME="My Service!")
    redis = create_redis(settings.redis)
    assert redis is not None
    storage = create_rate_limit_storage(redis, namespace=settings.app.slug)
    assert isinstance(storage, RedisQuotaStore)
    assert storage.prefix == "ratelimit:my-service:mw"
    # The app's one Redis client and pool, not a second one of its own.
    assert storage.redis is redis
    await redis.aclose()


def test_oidc_tokens_are_not_decoded_by_the_limiter() -> None:
    settings = make_settings(
        AUTH_PROVIDER="oidc",
        OIDC_ISSUER="https://issuer.test/",
        OIDC_AUDIENCE="api",
        OIDC_JWKS_URL="https://issuer.test/jwks",
    )
    storage = create_rate_limit_storage(None, namespace=settings.app.slug)
    options = rate_limit_options(settings, renderer=RENDERER, storage=storage, paths=ROUTE_PATHS)
    key_func = options["key_func"]
    assert isinstance(key_func, ClientKey)
    assert key_func.token_subject is None


def _documented_rows() -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "rate-limiting.md").read_text()
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_rate_limiting_page_names_every_path_of_the_auth_quota_and_no_other() -> None:
    auth_row = next(row for row in _documented_rows() if '`"auth"`' in row)
    named = re.findall(r"`(POST|PUT|PATCH|DELETE) (/[^`]*)`", auth_row)
    assert named == list(ROUTE_PATHS.credentials)


def test_rate_limiting_page_names_the_limited_roots_and_the_exempt_paths() -> None:
    other_row = next(row for row in _documented_rows() if '`"minute"`' in row)
    exempt_row = next(row for row in _documented_rows() if "not limited" in row)
    for root in ROUTE_PATHS.api_roots:
        assert f"`{root}`" in other_row
        assert f"`{root}`" in exempt_row  # "anything else outside" them
    for path in (*ROUTE_PATHS.unlimited, "/health", "/metrics"):
        assert f"`{path}`" in exempt_row
