"""The rate-limit middleware on an inline app: quotas and their headers, the 429 problem,
exempt paths, the stricter auth quota, bad options, and a storage that fails (open or closed).

Keys: test_rate_limit_keys.py; both stores and strategies, Redis's one call per request:
test_rate_limit_stores.py; the stores alone: tests/infra/test_rate_limit_storage.py; the real
app: test_rate_limit_app.py and test_rate_limit_server.py; options from settings:
tests/test_pipeline.py.
"""

import re
from collections.abc import Sequence
from typing import Any

import pytest
from httpx2 import ASGITransport, AsyncClient
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core.quotas import Decision, Quota
from app.infra.rate_limit_storage import MemoryQuotaStore
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import client_ip_key
from tests.harness import PROBLEM, log_lines
from tests.middleware.apps import RENDERER
from tests.middleware.rate_limit_apps import (
    AUTH_PATHS,
    CLIENT,
    OTHER_CLIENT,
    PATHS,
    UNLIMITED_PATHS,
    Calls,
    client,
    get_many,
    middleware,
    seconds,
)

pytestmark = pytest.mark.anyio


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
    assert refused.headers["content-type"] == PROBLEM
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


@pytest.mark.parametrize(
    ("per_minute", "per_hour", "other", "left"),
    [
        (2, 10, Quota("hour", 10, 3600), 7),  # refused by the minute: the hour not counted
        (5, 2, Quota("minute", 5, 60), 2),  # refused by the hour: no minute slot used
    ],
)
async def test_a_request_refused_by_one_window_is_counted_in_no_other(
    per_minute: int, per_hour: int, other: Quota, left: int
) -> None:
    store = MemoryQuotaStore()
    limited = middleware(per_minute=per_minute, per_hour=per_hour, store=store)
    responses = await get_many(limited, "/api/v1/items", 5)
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    decision = await store.hit(client_ip_key({"client": CLIENT}), [other])
    assert decision.remaining == left  # two requests passed, and this one


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


async def test_an_auth_route_is_its_method_and_path() -> None:
    async with client(middleware()) as c:
        deletion = await c.delete("/api/v1/me")
        reading = await c.get("/api/v1/me")
        posting = await c.post("/api/v1/me")
    assert deletion.headers["ratelimit-policy"] == '"auth";q=2;w=60'
    assert reading.headers["ratelimit-policy"].startswith('"minute";q=3;')
    assert posting.headers["ratelimit-policy"].startswith('"minute";q=3;')


# --- Options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limits": ()}, "At least one limit"),
        ({"auth_limits": ()}, "At least one limit"),
        ({"limits": (Quota("Per Minute", 1, 60),)}, "Limit names must be like"),
        ({"limits": (Quota("minute", 0, 60),)}, "at least one request"),
        ({"limits": (Quota("minute", 1, 0),)}, "window of at least one second"),
        ({"limits": (Quota("minute", 1, 60), Quota("minute", 5, 3600))}, "names must differ"),
        ({"unavailable_retry_after": 0}, "unavailable_retry_after"),
        ({"prefixes": ("api/",)}, "must start with '/'"),
        ({"auth_routes": [("POST", "auth/login")]}, "must start with '/'"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "limits": (Quota("minute", 1, 60),),
        "auth_limits": (Quota("auth", 1, 60),),
        "store": MemoryQuotaStore(),
        "fail_open": True,
        "renderer": RENDERER,
        "key_func": client_ip_key,
        **PATHS,
    }
    values.update(options)
    with pytest.raises(ValueError, match=message):
        RateLimitMiddleware(Calls().app(), **values)


# --- Storage failures -----------------------------------------------------------------------


class FlakyStore(MemoryQuotaStore):
    """A memory store that raises Redis's connection error while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def hit(self, key: str, quotas: Sequence[Quota]) -> Decision:
        if self.failing:
            raise RedisConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.1:6379.")
        return await super().hit(key, quotas)


async def test_fail_open_lets_requests_through_logs_once_and_counts() -> None:
    storage = FlakyStore()
    storage.failing = True
    heard: list[str] = []
    limited = middleware(
        per_minute=1, store=storage, on_storage_error=lambda: heard.append("storage_error")
    )
    with log_lines() as logs:
        responses = await get_many(limited, "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not any("ratelimit" in r.headers for r in responses)
    assert limited.storage_errors == 3
    assert heard == ["storage_error"] * 3  # one report per failed call, though logged once
    [warning] = logs.events("rate_limit_storage_error")  # repeats are collapsed
    assert warning["level"] == "warning"
    assert warning["error_type"] == "ConnectionError"
    assert warning["storage_errors"] == 1
    assert "hunter2" not in str(logs.all())


async def test_fail_closed_answers_a_503_problem_with_retry_after() -> None:
    storage = FlakyStore()
    storage.failing = True
    calls = Calls()
    limited = middleware(calls, store=storage, fail_open=False, unavailable_retry_after=7)
    [response] = await get_many(limited, "/api/v1/items", 1)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "service_unavailable"
    assert seconds(response.headers["retry-after"]) == 7
    assert calls.count == 0
    assert limited.storage_errors == 1


async def test_enforcement_resumes_when_the_storage_recovers() -> None:
    storage = FlakyStore()
    limited = middleware(per_minute=2, store=storage)
    storage.failing = True
    assert [r.status_code for r in await get_many(limited, "/api/v1/items", 4)] == [200] * 4
    storage.failing = False
    responses = await get_many(limited, "/api/v1/items", 3)
    assert [r.status_code for r in responses] == [200, 200, 429]
