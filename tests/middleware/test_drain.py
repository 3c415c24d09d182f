"""Draining: while the process is about to stop, every response closes its connection."""

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware

from app.core.lifecycle import Lifecycle
from app.middleware.drain import DrainMiddleware
from tests.middleware.apps import inline_app

pytestmark = pytest.mark.anyio


async def test_responses_close_their_connections_only_while_draining() -> None:
    lifecycle = Lifecycle()
    app = inline_app(Middleware(DrainMiddleware, draining=lifecycle.is_draining))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        serving = await client.get("/items/1")
        lifecycle.draining = True
        draining = await client.get("/items/1")
        missing = await client.get("/nowhere")  # any answer, not only successes
    assert "connection" not in serving.headers
    assert draining.status_code == 200
    assert draining.headers.get_list("connection") == ["close"]
    assert (missing.status_code, missing.headers.get_list("connection")) == (404, ["close"])
