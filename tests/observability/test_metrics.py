"""GET /metrics on the real app: values that move with requests, bounded labels, access rules."""

import asyncio
import random
import string
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from redis.exceptions import RedisError

from app.core.circuit import CircuitBreaker
from app.core.config import Settings
from app.deps import resources_of
from app.middleware.metrics import MetricsMiddleware
from app.observability.metrics import create_metrics
from app.observability.sampling import CircuitGauge
from tests.harness import FakeClock, assert_problem, free_port, make_settings, started
from tests.identity import signed_up, unique_email
from tests.items.helpers import ITEMS, create_item, item_url
from tests.observability.helpers import label_values, scrape, total, value
from tests.upstream import Outcome, upstream

pytestmark = pytest.mark.anyio

META = "/api/v1/meta"
ME = "/api/v1/users/me"


def outside_client(app: FastAPI, host: str = "203.0.113.7") -> AsyncClient:
    """A client whose address is not loopback."""
    transport = ASGITransport(app=app, client=(host, 4000))
    return AsyncClient(transport=transport, base_url="http://testserver")


async def test_requests_are_counted_by_route_template_method_and_status(
    client: AsyncClient,
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(META)).status_code == 200
    item = str(uuid.uuid4())
    assert (await client.get(item_url(item))).status_code == 401
    after = await scrape(client)

    meta = {"method": "GET", "route": META}
    assert (
        value(after, "http_requests_total", **meta, status="200")
        - value(before, "http_requests_total", **meta, status="200")
        == 3
    )
    assert (
        value(after, "http_request_duration_seconds_count", **meta)
        - value(before, "http_request_duration_seconds_count", **meta)
        == 3
    )
    assert value(after, "http_request_duration_seconds_sum", **meta) > 0
    # The template, never the path: the id is in no label.
    templated = {"method": "GET", "route": "/api/v1/items/{item_id}", "status": "401"}
    assert value(after, "http_requests_total", **templated) == 1
    assert not any(item in str(labels) for _, labels in after)
    # The scrape before this one was counted too, and nothing is in flight between requests
    # but the scrape itself.
    assert value(after, "http_requests_total", method="GET", route="/metrics", status="200") >= 1
    assert value(after, "http_requests_in_progress") == 1


async def test_a_flood_of_random_paths_and_methods_adds_no_series(client: AsyncClient) -> None:
    await client.get(META)
    before = await scrape(client)
    rng = random.Random(7)  # noqa: S311 - reproducible paths, no secret
    for _ in range(150):
        path = "/" + "".join(rng.choices(string.ascii_lowercase, k=12))
        assert (await client.get(path)).status_code == 404
        assert (await client.request("BREW", f"{path}/{rng.randrange(10**9)}")).status_code in (
            404,
            405,
        )
    after = await scrape(client)

    routes = label_values(after, "http_requests_total", "route")
    assert routes == label_values(before, "http_requests_total", "route") | {
        "/metrics",
        "unmatched",
    }
    assert label_values(after, "http_requests_total", "method") <= {"GET", "OTHER"}
    assert total(after, "http_requests_total", route="unmatched") == 300
    assert (
        value(after, "http_requests_total", method="OTHER", route="unmatched", status="404") == 150
    )


async def test_auth_failures_are_counted_by_their_code(client: AsyncClient) -> None:
    assert (await client.get(ME)).status_code == 401
    assert (await client.get(ME, headers={"Authorization": "Bearer nonsense"})).status_code == 401
    assert (await client.get(ME, headers={"Authorization": "Bearer nonsense"})).status_code == 401
    samples = await scrape(client)
    assert value(samples, "auth_failures_total", reason="not_authenticated") == 1
    assert value(samples, "auth_failures_total", reason="invalid_token") == 2


async def test_cache_hits_misses_and_idempotent_replays_are_counted(client: AsyncClient) -> None:
    headers = await signed_up(client, unique_email("metrics"))
    item = await create_item(client, headers)
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(item_url(item["id"]), headers=headers)).status_code == 200
    replay = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"title": "Once", "price": "1.00", "currency": "EUR"}
    first = await client.post(ITEMS, json=body, headers=replay)
    again = await client.post(ITEMS, json=body, headers=replay)
    after = await scrape(client)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    hits = value(after, "cache_requests_total", result="hit") - value(
        before, "cache_requests_total", result="hit"
    )
    assert hits >= 2  # the first read may miss; the next ones hit (users' reads may add more)
    assert value(after, "cache_requests_total", result="miss") >= 1
    assert (
        value(after, "idempotency_replays_total") - value(before, "idempotency_replays_total") == 1
    )


async def test_pool_process_and_gc_figures_are_exported(
    client: AsyncClient, settings: Settings
) -> None:
    assert (await client.get(META)).status_code == 200
    samples = await scrape(client)
    database = settings.database
    assert value(samples, "db_pool_max_connections") == database.pool_size + database.max_overflow
    # The test harness holds one connection for its rolled-back transaction.
    assert value(samples, "db_pool_connections", state="in_use") >= 1
    assert ("db_pool_connections", frozenset({("state", "idle")})) in samples
    assert value(samples, "process_resident_memory_bytes") > 0
    assert total(samples, "python_gc_collections_total") > 0
    assert value(samples, "python_info", **dict(next(
        labels for name, labels in samples if name == "python_info"
    ))) == 1  # fmt: skip


async def test_rate_limit_refusals_are_counted(settings: Settings) -> None:
    limited: dict[str, Any] = {
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_PER_MINUTE": 2,
        "RATE_LIMIT_BURST": 0,
    }
    async with started(settings, **limited) as (_, client):
        statuses = [(await client.get(ME)).status_code for _ in range(5)]
        samples = await scrape(client)
    assert statuses == [401, 401, 429, 429, 429]
    assert value(samples, "rate_limit_rejections_total") == 3
    assert value(samples, "http_requests_total", method="GET", route="unmatched", status="429") == 3


async def test_a_dead_rate_limit_store_is_counted_as_backend_errors(settings: Settings) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    options: dict[str, Any] = {"RATE_LIMIT_ENABLED": True, "REDIS_URL": dead_redis}
    async with started(settings, **options) as (_, client):
        statuses = [(await client.get(ME)).status_code for _ in range(5)]
        samples = await scrape(client)
    assert statuses == [401] * 5  # fail open
    # Three refused connections open the Redis client's circuit breaker; the two calls it then
    # refuses at once are storage errors too: every request passed unchecked is counted.
    assert value(samples, "rate_limit_backend_errors_total") == 5


async def test_metrics_are_refused_to_other_addresses_without_the_token(
    settings: Settings,
) -> None:
    async with started(settings, METRICS_TOKEN="scrape-token-0123456789") as (app, client):
        async with outside_client(app) as outsider:
            refused = await outsider.get("/metrics")
            wrong = await outsider.get("/metrics", headers={"Authorization": "Bearer wrong"})
            allowed = await outsider.get(
                "/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}
            )
        samples = await scrape(client)
    assert_problem(refused, 403, "metrics_forbidden")
    assert_problem(wrong, 403, "metrics_forbidden")
    assert allowed.status_code == 200
    assert "http_requests_total" in allowed.text
    assert value(samples, "auth_failures_total", reason="metrics_forbidden") == 2


async def test_allowed_networks_may_read_the_metrics(settings: Settings) -> None:
    async with started(settings, METRICS_ALLOWED_IPS="203.0.113.0/24") as (app, client):
        async with outside_client(app, "203.0.113.99") as inside, outside_client(app) as other:
            assert (await inside.get("/metrics")).status_code == 200
            assert (await other.get("/metrics")).status_code == 200  # .7 is in the /24 too
        async with outside_client(app, "198.51.100.1") as stranger:
            assert_problem(await stranger.get("/metrics"), 403, "metrics_forbidden")
        assert_problem(await client.get("/metrics"), 403, "metrics_forbidden")  # loopback


async def test_openmetrics_when_the_scraper_asks(client: AsyncClient) -> None:
    accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = await client.get("/metrics", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in response.text
    plain = await client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    for answer in (response, plain):  # the format follows Accept: a cache must know it
        assert "accept" in answer.headers["vary"].lower().replace(" ", "").split(",")


async def test_metrics_enabled_false_mounts_nothing(settings: Settings) -> None:
    async with started(settings, METRICS_ENABLED=False) as (app, client):
        response = await client.get("/metrics")
        assert (await client.get(META)).status_code == 200
    assert_problem(response, 404, "not_found")
    layers: list[object] = [layer.cls for layer in app.user_middleware]
    assert MetricsMiddleware not in layers


async def test_the_redis_circuit_state_follows_the_breaker(settings: Settings) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    options: dict[str, Any] = {"REDIS_URL": dead_redis, "REDIS_BREAKER_FAILURES": 1}
    async with started(settings, **options) as (app, client):
        closed = await scrape(client)
        redis = resources_of(app).redis
        assert redis is not None
        with pytest.raises(RedisError):
            await redis.ping()  # refused: the breaker opens
        opened = await scrape(client)
    assert value(closed, "redis_circuit_state") == 0
    assert value(opened, "redis_circuit_state") == 2


def test_the_circuit_gauge_reads_every_state() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("redis", failure_threshold=1, cool_down=2, clock=clock)
    metrics = create_metrics(make_settings().metrics)
    gauge = CircuitGauge(metrics, breaker)
    seen = []
    for step in (lambda: None, breaker.failed, lambda: clock.advance(2), breaker.allow):
        step()
        gauge.sample()
        seen.append(metrics.registry.get_sample_value("redis_circuit_state"))
    breaker.succeeded()
    gauge.sample()
    seen.append(metrics.registry.get_sample_value("redis_circuit_state"))
    # Open until a call comes after the cool-down; that call is the probe (half-open).
    assert seen == [0, 2, 2, 1, 0]


async def test_outbound_breaker_changes_are_counted_by_state(settings: Settings) -> None:
    options: dict[str, Any] = {
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": 1,
        "CIRCUIT_BREAKER_RESET_SECONDS": 0.2,
        "HTTP_RETRIES": 0,
    }
    with upstream() as server:
        server.answer(Outcome(status=503))
        async with started(settings, **options) as (app, client):
            http = resources_of(app).http
            assert (await http.get(server.url)).status_code == 503  # opens
            await asyncio.sleep(0.25)
            assert (await http.get(server.url)).status_code == 200  # the probe closes it
            samples = await scrape(client)
    counts = {state: value(samples, TRANSITIONS, state=state) for state in STATES}
    assert counts == {"open": 1, "half_open": 1, "closed": 1}


TRANSITIONS = "http_circuit_transitions_total"
STATES = ("open", "half_open", "closed")
