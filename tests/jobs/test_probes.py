"""The worker's and scheduler's probe server: `/metrics` behind the web app's gate, hardened
answers, and no banner.
"""

from collections.abc import AsyncIterator

import pytest
from httpx2 import ASGITransport, AsyncClient

from app.resources import Resources, build_resources, close_resources
from app.worker import _probe_app, _probe_config
from tests.harness import PROBLEM, make_settings

pytestmark = pytest.mark.anyio

VERSION = "0.0.0-test"
TOKEN = "a-metrics-token-of-the-test"  # nosec B105


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    built = build_resources(make_settings(METRICS_TOKEN=TOKEN), version=VERSION)
    try:
        yield built
    finally:
        await close_resources(built)


def probe_client(resources: Resources, address: str) -> AsyncClient:
    transport = ASGITransport(app=_probe_app(resources), client=(address, 4711))
    return AsyncClient(transport=transport, base_url="http://10.1.2.3:9000")


async def test_metrics_are_read_as_the_web_app_lets_them_be(resources: Resources) -> None:
    async with probe_client(resources, "203.0.113.9") as c:
        refused = await c.get("/metrics")
        with_token = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        live = await c.get("/live")  # the orchestrator's probe: from anywhere
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "metrics_forbidden"
    assert with_token.status_code == 200
    assert with_token.headers["vary"] == "Accept"  # the format follows Accept
    assert live.status_code == 200
    async with probe_client(resources, "127.0.0.1") as c:  # METRICS_ALLOWED_IPS
        assert (await c.get("/metrics")).status_code == 200
    for response in (refused, with_token, live):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


async def test_the_probe_server_sends_no_banner_and_trusts_no_forwarded_header(
    resources: Resources,
) -> None:
    config = _probe_config(resources, host="0.0.0.0", port=9000)  # noqa: S104  # nosec B104
    assert config.server_header is False
    assert config.proxy_headers is False
