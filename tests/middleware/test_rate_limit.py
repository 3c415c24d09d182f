import asyncio
import functools
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient, Response
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from app.api import ROUTE_PATHS
from app.core.config import Settings
from app.core.problems import ProblemRenderer
from app.core.security import create_access_token, token_subject
from app.infra import rate_limit_storage as storage_module
from app.infra.rate_limit_storage import PrunedMemoryStorage, create_rate_limit_storage
from app.infra.redis import create_redis
from app.main import create_app
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import ClientKey, client_ip_key
from app.pipeline import rate_limit_options
from tests.harness import client_for, log_lines, make_settings, running
from tests.migrations import migrate

pytestmark = pytest.mark.anyio

RENDERER = ProblemRenderer("https://errors.test/")
CLIENT = ("203.0.113.9", 4711)
OTHER_CLIENT = ("198.51.100.7", 4711)
AUTH_PATHS = (
    "/api/v1/auth/login",
    "/auth/login",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
)
UNLIMITED_PATHS = ("/health", "/metrics", "/api/v1/health", "/api/v1/health/live", "/docs")
# Where the real app's routes put the API and its exempt probes.
PATHS: dict[str, Any] = {
    "prefixes": ("/api/",),
    "exempt": ("/api/v1/health",),
    "auth_paths": AUTH_PATHS,
}


class Calls:
    """The inner app: counts the requests that reached it."""

    def __init__(self) -> None:
        self.count = 0

    async def endpoint(self, request: Request) -> JSONResponse:
        self.count += 1
        return JSONResponse({"path": request.url.path})

    def app(self) -> Starlette:
        get_paths = ("/api/v1/items", "/api/v1/healthy", *UNLIMITED_PATHS)
        routes = [Route(path, self.endpoint) for path in get_paths]
        routes += [Route(path, self.endpoint, methods=["GET", "POST"]) for path in AUTH_PATHS]
        return Starlette(routes=routes)


def middleware(
    calls: Calls | None = None,
    *,
    per_minute: int = 3,
    per_hour: int = 100,
    per_auth: int = 2,
    **options: Any,
) -> RateLimitMiddleware:
    options.setdefault("storage", PrunedMemoryStorage())
    options.setdefault("strategy", "moving-window")
    options.setdefault("fail_open", True)
    options.setdefault("key_func", client_ip_key)
    return RateLimitMiddleware(
        (calls or Calls()).app(),
        limits={
            "minute": RateLimitItemPerMinute(per_minute),
            "hour": RateLimitItemPerHour(per_hour),
        },
        auth_limits={"auth": RateLimitItemPerMinute(per_auth)},
        renderer=RENDERER,
        **{**PATHS, **options},
    )


def client(app: Any, address: tuple[str, int] = CLIENT) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app, client=address), base_url="http://test")


async def get_many(app: Any, path: str, times: int, **kwargs: Any) -> list[Response]:
    async with client(app, **kwargs) as c:
        return [await c.get(path) for _ in range(times)]


def seconds(value: str) -> int:
    assert re.fullmatch(r"\d+", value), value
    return int(value)


# --- Limits and headers -------------------------------------------------------------------


async def test_responses_within_the_limit_carry_the_ietf_and_x_headers() -> None:
    responses = await get_many(middleware(), "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    for remaining, response in zip((2, 1, 0), responses, strict=True):
        headers = response.headers
        assert headers["ratelimit-policy"] == '"minute";q=3;w=60, "hour";q=100;w=3600'
        assert re.fullmatch(rf'"minute";r={remaining};t=(59|60)', headers["ratelimit"])
        assert headers["x-ratelimit-limit"] == "3"
        assert headers["x-ratelimit-remaining"] == str(remaining)
        assert 59 <= seconds(headers["x-ratelimit-reset"]) <= 60


async def test_past_the_limit_a_429_problem_with_retry_after() -> None:
    calls = Calls()
    *_, refused = await get_many(middleware(calls), "/api/v1/items", 4)
    assert calls.count == 3
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["instance"] == "/api/v1/items"
    assert 1 <= seconds(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-reset"] == refused.headers["retry-after"]
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit"].startswith('"minute";r=0;t=')
    assert refused.headers["ratelimit-policy"] == '"minute";q=3;w=60, "hour";q=100;w=3600'


async def test_the_quota_with_the_fewest_requests_left_is_reported() -> None:
    first, second, refused = await get_many(
        middleware(per_minute=5, per_hour=2), "/api/v1/items", 3
    )
    assert re.fullmatch(r'"hour";r=1;t=(3599|3600)', first.headers["ratelimit"])
    assert first.headers["x-ratelimit-limit"] == "2"
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    assert refused.headers["ratelimit"].startswith('"hour";r=0;')
    assert seconds(refused.headers["retry-after"]) > 3000


async def test_a_request_refused_by_the_minute_window_is_not_counted_by_the_hour() -> None:
    hour = RateLimitItemPerHour(10)
    limited = RateLimitMiddleware(
        Calls().app(),
        limits={"minute": RateLimitItemPerMinute(2), "hour": hour},
        auth_limits={"auth": RateLimitItemPerMinute(2)},
        storage=PrunedMemoryStorage(),
        strategy="moving-window",
        fail_open=True,
        renderer=RENDERER,
        key_func=client_ip_key,
        **PATHS,
    )
    responses = await get_many(limited, "/api/v1/items", 5)
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    stats = await limited.limiter.get_window_stats(hour, "hour", client_ip_key({"client": CLIENT}))
    assert stats.remaining == 8


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
async def test_both_strategies_enforce_the_limit(strategy: str) -> None:
    responses = await get_many(middleware(strategy=strategy), "/api/v1/items", 5)
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert responses[0].headers["x-ratelimit-remaining"] == "2"


async def test_each_client_address_has_its_own_quota() -> None:
    limited = middleware(per_minute=1)
    assert [r.status_code for r in await get_many(limited, "/api/v1/items", 2)] == [200, 429]
    [other] = await get_many(limited, "/api/v1/items", 1, address=OTHER_CLIENT)
    assert other.status_code == 200


@pytest.mark.parametrize("path", UNLIMITED_PATHS)
async def test_health_metrics_and_paths_outside_the_api_are_not_limited(path: str) -> None:
    responses = await get_many(middleware(per_minute=1), path, 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not any("ratelimit" in r.headers or "x-ratelimit-limit" in r.headers for r in responses)


async def test_only_the_health_subtree_is_exempt_not_its_name_as_a_prefix() -> None:
    [response] = await get_many(middleware(), "/api/v1/healthy", 1)
    assert response.headers["x-ratelimit-remaining"] == "2"


async def test_the_path_is_matched_below_the_root_path() -> None:
    limited = middleware(per_minute=1)
    transport = ASGITransport(app=limited, client=CLIENT, root_path="/svc")
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        statuses = [(await c.get("/svc/api/v1/items")).status_code for _ in range(2)]
    assert statuses == [200, 429]


@pytest.mark.parametrize("path", AUTH_PATHS)
async def test_login_and_password_reset_have_a_stricter_limit_per_address(path: str) -> None:
    # Even an authenticated caller is counted by address on these paths.
    limited = middleware(per_minute=10, per_auth=2, key_func=lambda scope: "user:same")
    async with client(limited) as c:
        statuses = [(await c.post(path)).status_code for _ in range(3)]
        refused = await c.post(path)
        other_route = await c.get("/api/v1/items")
    assert statuses == [200, 200, 429]
    assert refused.headers["ratelimit-policy"] == '"auth";q=2;w=60'
    assert refused.headers["ratelimit"].startswith('"auth";r=0;')
    assert other_route.status_code == 200
    async with client(limited, OTHER_CLIENT) as c:
        assert (await c.post(path)).status_code == 200


async def test_equal_limits_of_two_policies_keep_separate_counts() -> None:
    limited = middleware(per_minute=2, per_auth=2)
    async with client(limited) as c:
        logins = [(await c.post("/api/v1/auth/login")).status_code for _ in range(3)]
        items = [(await c.get("/api/v1/items")).status_code for _ in range(3)]
    assert logins == [200, 200, 429]
    assert items == [200, 200, 429]


async def test_a_get_on_an_auth_path_uses_the_general_quota() -> None:
    [response] = await get_many(middleware(), "/api/v1/auth/login", 1)
    assert response.headers["ratelimit-policy"].startswith('"minute";q=3;')


# --- Keys -----------------------------------------------------------------------------------


def scope_with(*headers: tuple[bytes, bytes], client: tuple[str, int] | None = CLIENT) -> Scope:
    return {"type": "http", "headers": list(headers), "client": client}


def token(settings: Settings, subject: uuid.UUID, *, issued: datetime | None = None) -> bytes:
    now = issued or datetime.now(UTC)
    access = create_access_token(
        subject=subject, session_id=uuid.uuid4(), auth=settings.auth, now=now
    )
    return b"Bearer " + access.token.encode()


def verifying(settings: Settings) -> ClientKey:
    """The key function the real app uses with local tokens."""
    return ClientKey(functools.partial(token_subject, auth=settings.auth))


def test_a_valid_access_token_is_keyed_by_its_user() -> None:
    settings = make_settings()
    user_id = uuid.uuid4()
    key = verifying(settings)(scope_with((b"authorization", token(settings, user_id))))
    assert key == f"user:{user_id}"


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer not-a-jwt",
        b"Basic dXNlcjpwYXNz",
        b"Bearer ",
        b"bearer",
    ],
)
def test_unusable_credentials_fall_back_to_the_address(authorization: bytes) -> None:
    key = verifying(make_settings())(scope_with((b"authorization", authorization)))
    assert key == "ip:203.0.113.9"


def test_tokens_that_fail_verification_fall_back_to_the_address() -> None:
    settings = make_settings()
    other = make_settings(JWT_SECRET="another-secret-of-at-least-32-characters!!")
    expired = token(settings, uuid.uuid4(), issued=datetime.now(UTC) - timedelta(days=1))
    forged = token(other, uuid.uuid4())
    for authorization in (expired, forged):
        assert verifying(settings)(scope_with((b"authorization", authorization))) == (
            "ip:203.0.113.9"
        )


def test_tokens_are_not_decoded_without_settings() -> None:
    settings = make_settings()
    authorization = token(settings, uuid.uuid4())
    assert ClientKey(None)(scope_with((b"authorization", authorization))) == "ip:203.0.113.9"


def test_api_keys_cannot_open_quotas_of_their_own() -> None:
    # Unverifiable without the database: random keys must not each get a fresh quota.
    settings = make_settings()
    for api_key in (b"x", b"pfb_0123abcd_" + b"s" * 43):
        key = verifying(settings)(
            scope_with((b"authorization", token(settings, uuid.uuid4())), (b"x-api-key", api_key))
        )
        assert key == "ip:203.0.113.9"


def test_a_request_without_a_client_address_shares_one_key() -> None:
    assert verifying(make_settings())(scope_with(client=None)) == "ip:unknown"


async def test_users_keep_their_quota_from_any_address() -> None:
    settings = make_settings()
    headers = {"Authorization": token(settings, uuid.uuid4()).decode()}
    limited = middleware(per_minute=2, key_func=verifying(settings))
    async with client(limited) as c:
        assert [(await c.get("/api/v1/items", headers=headers)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        assert (await c.get("/api/v1/items")).status_code == 200  # the address: its own quota
    async with client(limited, OTHER_CLIENT) as c:
        assert (await c.get("/api/v1/items", headers=headers)).status_code == 429


# --- Options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "fixed-window"}, "strategy must be one of"),
        ({"limits": {}}, "At least one limit"),
        ({"auth_limits": {}}, "At least one limit"),
        ({"limits": {"Per Minute": RateLimitItemPerMinute(1)}}, "Limit names"),
        ({"limits": {"minute": RateLimitItemPerMinute(0)}}, "at least one request"),
        ({"storage_retry_interval": -1}, "storage_retry_interval"),
        ({"prefixes": ("api/",)}, "must start with '/'"),
        ({"auth_paths": ("auth/login",)}, "must start with '/'"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "limits": {"minute": RateLimitItemPerMinute(1)},
        "auth_limits": {"auth": RateLimitItemPerMinute(1)},
        "storage": PrunedMemoryStorage(),
        "strategy": "moving-window",
        "fail_open": True,
        "renderer": RENDERER,
        "key_func": client_ip_key,
        **PATHS,
    }
    values.update(options)
    with pytest.raises(ValueError, match=message):
        RateLimitMiddleware(Calls().app(), **values)


def test_a_negative_prune_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="prune_interval"):
        PrunedMemoryStorage(prune_interval=-1)


def test_options_from_settings_use_memory_and_add_the_burst_to_the_minute() -> None:
    settings = make_settings(
        RATE_LIMIT_PER_MINUTE=60,
        RATE_LIMIT_BURST=10,
        RATE_LIMIT_PER_HOUR=1000,
        RATE_LIMIT_AUTH_PER_MINUTE=5,
        RATE_LIMIT_STRATEGY="sliding-window-counter",
        RATE_LIMIT_FAIL_OPEN=False,
    )
    storage = create_rate_limit_storage(None, namespace=settings.app.slug)
    options = rate_limit_options(settings, renderer=RENDERER, storage=storage, paths=ROUTE_PATHS)
    assert isinstance(options["storage"], PrunedMemoryStorage)
    assert options["auth_paths"] == ROUTE_PATHS.credentials
    assert [(name, item.amount, item.get_expiry()) for name, item in options["limits"].items()] == [
        ("minute", 70, 60),
        ("hour", 1000, 3600),
    ]
    assert options["auth_limits"]["auth"].amount == 5
    assert options["strategy"] == "sliding-window-counter"
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
    assert isinstance(storage, RedisStorage)
    assert storage.bridge.key_prefix == "ratelimit:my-service"
    # The app's one Redis pool, not a second one of its own.
    bridge: Any = storage.bridge
    assert bridge.storage.connection_pool is redis.connection_pool
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


# --- Storage failures -----------------------------------------------------------------------


class FlakyStorage(PrunedMemoryStorage):
    """Memory storage that raises Redis's connection error while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.attempts = 0

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        self.attempts += 1
        if self.failing:
            raise RedisConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.1:6379.")
        return await super().acquire_entry(key, limit, expiry, amount)


async def test_fail_open_lets_requests_through_logs_once_and_counts() -> None:
    storage = FlakyStorage()
    storage.failing = True
    limited = middleware(per_minute=1, storage=storage, storage_retry_interval=0)
    with log_lines() as logs:
        responses = await get_many(limited, "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not any("ratelimit" in r.headers for r in responses)
    assert limited.storage_errors == 3
    [warning] = logs.events("rate_limit_storage_error")  # at most one per few seconds
    assert warning["level"] == "warning"
    assert warning["error_type"] == "ConnectionError"
    assert warning["storage_errors"] == 1
    assert "hunter2" not in str(logs.all())


async def test_fail_closed_answers_a_503_problem_with_retry_after() -> None:
    storage = FlakyStorage()
    storage.failing = True
    calls = Calls()
    limited = middleware(calls, storage=storage, fail_open=False)
    [response] = await get_many(limited, "/api/v1/items", 1)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
    assert seconds(response.headers["retry-after"]) >= 1
    assert calls.count == 0
    assert limited.storage_errors == 1


async def test_enforcement_resumes_when_the_storage_recovers() -> None:
    storage = FlakyStorage()
    limited = middleware(per_minute=2, storage=storage, storage_retry_interval=0)
    storage.failing = True
    assert [r.status_code for r in await get_many(limited, "/api/v1/items", 4)] == [200] * 4
    storage.failing = False
    responses = await get_many(limited, "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 429]


async def test_after_an_error_the_storage_is_left_alone_for_a_moment() -> None:
    storage = FlakyStorage()
    limited = middleware(per_minute=1, storage=storage, storage_retry_interval=60)
    storage.failing = True
    await get_many(limited, "/api/v1/items", 1)
    storage.failing = False
    responses = await get_many(limited, "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 200]  # fail-open, unchecked
    assert storage.attempts == 1
    assert limited.storage_errors == 1


# --- Memory storage -------------------------------------------------------------------------


class Clock:
    """Stands in for the `time` module of the memory storage."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(storage_module, "time", fake)
    return fake


async def hit(
    limiter: MovingWindowRateLimiter | SlidingWindowCounterRateLimiter,
    item: RateLimitItem,
    *keys: str,
) -> None:
    for key in keys:
        assert await limiter.hit(item, key)


async def test_memory_storage_drops_expired_keys(clock: Clock) -> None:
    storage = PrunedMemoryStorage(prune_interval=10)
    moving, sliding = MovingWindowRateLimiter(storage), SlidingWindowCounterRateLimiter(storage)
    minute, hour = RateLimitItemPerMinute(5), RateLimitItemPerHour(5)
    clients = [f"ip:10.0.0.{n}" for n in range(50)]
    await hit(moving, minute, *clients)
    await hit(moving, hour, "ip:hourly")
    await hit(sliding, minute, *clients)
    assert len(storage.events) == 51
    assert len(storage.counters) == 50

    clock.now += 61  # minute entries expired; the sweep runs at most every 10 s
    await hit(moving, minute, "ip:new")
    assert set(storage.events) == {minute.key_for("ip:new"), hour.key_for("ip:hourly")}
    assert len(storage.counters) == 50  # sliding-window counters live for two windows

    clock.now += 60
    await hit(moving, minute, "ip:newer")
    assert len(storage.counters) == 0
    clock.now += 3600
    await hit(moving, minute, "ip:latest")
    assert set(storage.events) == {minute.key_for("ip:latest")}
    assert set(storage.windows) == {minute.key_for("ip:latest")}


async def test_memory_storage_trims_expired_entries_of_live_keys(clock: Clock) -> None:
    storage = PrunedMemoryStorage(prune_interval=0)
    limiter = MovingWindowRateLimiter(storage)
    minute = RateLimitItemPerMinute(100)
    for _ in range(20):
        await hit(limiter, minute, "ip:busy")
        clock.now += 5
    assert len(storage.events[minute.key_for("ip:busy")]) == 12  # the last 60 seconds


async def test_memory_storage_sweeps_in_line_not_in_a_task_per_hit() -> None:
    # `limits`' own memory storage starts a sweeping task after every hit (see the class).
    storage = PrunedMemoryStorage(prune_interval=0)
    limiter = MovingWindowRateLimiter(storage)
    tasks = len(asyncio.all_tasks())
    for n in range(20):
        await hit(limiter, RateLimitItemPerMinute(5), f"ip:{n}")
        assert len(asyncio.all_tasks()) == tasks


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisNamespace:
    """An APP_NAME whose rate-limit keys no other test uses; they are deleted afterwards."""

    url: str
    app_name: str
    client: Redis

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=f"ratelimit:{self.app_name}:*"))


@pytest.fixture
def namespace(redis_url_or_skip: str) -> Iterator[RedisNamespace]:
    client = Redis.from_url(redis_url_or_skip)
    created = RedisNamespace(redis_url_or_skip, f"test-{uuid.uuid4().hex}", client)
    try:
        yield created
    finally:
        if found := created.keys():
            client.delete(*found)
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
async def test_redis_storage_enforces_the_limit(strategy: str, namespace: RedisNamespace) -> None:
    redis = AsyncRedis.from_url(namespace.url)
    storage = create_rate_limit_storage(redis, namespace=namespace.app_name)
    try:
        limited = middleware(per_minute=2, storage=storage, strategy=strategy)
        responses = await get_many(limited, "/api/v1/items", 3)
    finally:
        await redis.aclose()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["x-ratelimit-remaining"] == "1"
    assert namespace.keys()  # under the app's prefix
    assert limited.storage_errors == 0


# --- The real app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("rate-limit") / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(migrate(url, "head"))
    return url


@asynccontextmanager
async def real_app(database_url: str, **overrides: Any) -> AsyncIterator[AsyncClient]:
    settings = make_settings(DATABASE_URL=database_url, RATE_LIMIT_ENABLED=True, **overrides)
    async with running(create_app(settings)) as app, client_for(app) as c:
        yield c


def stack_of(app: FastAPI) -> list[type]:
    return [entry.cls for entry in app.user_middleware]  # type: ignore[misc]


def test_the_real_app_installs_the_limiter_only_when_enabled(database_file: str) -> None:
    on = create_app(make_settings(DATABASE_URL=database_file, RATE_LIMIT_ENABLED=True))
    off = create_app(make_settings(DATABASE_URL=database_file))
    assert RateLimitMiddleware in stack_of(on)
    assert RateLimitMiddleware not in stack_of(off)


async def test_the_real_app_limits_api_routes_with_the_burst(database_file: str) -> None:
    async with real_app(database_file, RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_BURST=1) as c:
        responses = [await c.get("/api/v1/users/me") for _ in range(4)]
        health = [await c.get(path) for path in ("/health", "/api/v1/health/live")]
    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    assert responses[0].headers["ratelimit-policy"] == '"minute";q=3;w=60, "hour";q=1000;w=3600'
    refused = responses[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert seconds(refused.headers["retry-after"]) >= 1
    assert [r.status_code for r in health] == [200, 200]
    assert not any("ratelimit" in r.headers for r in health)


async def test_the_real_app_limits_login_per_address(database_file: str) -> None:
    form = {"username": "nobody@example.com", "password": "wrong password"}
    async with real_app(database_file, RATE_LIMIT_AUTH_PER_MINUTE=2) as c:
        statuses = [(await c.post("/api/v1/auth/login", data=form)).status_code for _ in range(2)]
        legacy = await c.post("/auth/login", data=form)
        reset = await c.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
        other = await c.get("/api/v1/users/me")
    assert statuses == [401, 401]
    assert legacy.status_code == 429  # one quota for every sensitive path
    assert legacy.headers["ratelimit-policy"] == '"auth";q=2;w=60'
    assert reset.status_code == 429
    assert other.status_code == 401


async def test_the_real_app_keys_a_token_by_its_user(database_file: str) -> None:
    settings = make_settings()
    headers = {"Authorization": token(settings, uuid.uuid4()).decode()}
    async with real_app(database_file, RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_BURST=0) as c:
        anonymous = [(await c.get("/api/v1/users/me")).status_code for _ in range(2)]
        user = [(await c.get("/api/v1/users/me", headers=headers)).status_code for _ in range(2)]
    assert anonymous == [401, 429]
    assert user == [401, 429]  # its own quota: the address's is spent
