"""A route that calls another service: each way the call fails answers its own problem.

A tiny FastAPI app with the project's problem handlers and the request id middleware, whose
route fetches from a real upstream on loopback through the resilient client and lets the
client's errors rise, as a route that cannot do without the answer does.
"""

from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware

from app.core.problems import ProblemRenderer, register_exception_handlers
from app.middleware.request_id import RequestIdMiddleware
from tests.harness import assert_problem
from tests.upstream import Outcome, Upstream, resilient_client, upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx2.AsyncClient, Upstream]]:
    with upstream() as server:
        outbound = resilient_client(retries=1, threshold=2, reset=30, read_timeout=0.2)
        app = FastAPI(middleware=[Middleware(RequestIdMiddleware)])
        register_exception_handlers(app, ProblemRenderer("https://errors.test/"))

        @app.get("/proxy")
        async def proxy() -> object:
            response = await outbound.get(server.url)
            return response.raise_for_status().json()

        transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
        async with outbound, httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, server


async def test_a_timeout_upstream_is_504(setup: tuple[httpx2.AsyncClient, Upstream]) -> None:
    client, server = setup
    server.answer(otherwise=Outcome(delay=5.0))
    assert_problem(await client.get("/proxy"), 504, "upstream_timeout")


@pytest.mark.parametrize("status", [404, 500])
async def test_a_bad_upstream_answer_is_502(
    setup: tuple[httpx2.AsyncClient, Upstream], status: int
) -> None:
    client, server = setup
    server.answer(otherwise=Outcome(status=status))
    assert_problem(await client.get("/proxy"), 502, "external_service_error")


async def test_a_dropped_connection_is_503(setup: tuple[httpx2.AsyncClient, Upstream]) -> None:
    client, server = setup
    server.answer(Outcome(drop=True), Outcome(drop=True))
    response = await client.get("/proxy")
    assert_problem(response, 503, "upstream_unavailable")
    assert response.headers["Retry-After"] == "1"


async def test_an_open_breaker_is_503_with_its_retry_after(
    setup: tuple[httpx2.AsyncClient, Upstream],
) -> None:
    client, server = setup
    server.answer(otherwise=Outcome(status=503))
    first = await client.get("/proxy")  # two tries, two failures: the breaker opens
    assert_problem(first, 503, "upstream_unavailable")
    second = await client.get("/proxy", headers={"X-Request-ID": "req-7"})
    body = assert_problem(second, 503, "upstream_unavailable")
    assert second.headers["Retry-After"] == "30"
    assert body["request_id"] == "req-7"
    assert "127.0.0.1" not in body["detail"]  # the upstream's address stays private
    assert server.hits == 2
