"""Load shedding: a cap on requests in flight, a short queue, 503 `overloaded` beyond both."""

import asyncio
from typing import Any

import pytest
from httpx2 import ASGITransport, AsyncClient, Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.middleware.load_shed import LoadShedMiddleware
from tests.harness import assert_problem
from tests.middleware.apps import RENDERER

pytestmark = pytest.mark.anyio


class Gate:
    """An app whose requests wait until the test opens the gate; counts what runs at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.running = 0
        self.most = 0

    async def endpoint(self, request: Request) -> JSONResponse:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
        return JSONResponse({"path": request.url.path})

    def shed(self, **options: Any) -> LoadShedMiddleware:
        app = Starlette(routes=[Route("/work", self.endpoint), Route("/health", self.endpoint)])
        options = {"max_concurrent": 2, "max_queued": 1, "queue_timeout": 5.0, **options}
        return LoadShedMiddleware(app, renderer=RENDERER, exempt=("/health",), **options)


async def send_all(layer: LoadShedMiddleware, gate: Gate, paths: list[str]) -> list[Response]:
    async with AsyncClient(transport=ASGITransport(app=layer), base_url="http://t") as client:
        tasks = [asyncio.create_task(client.get(path)) for path in paths]
        await asyncio.sleep(0.1)  # every request has arrived and taken its place
        gate.open.set()
        return list(await asyncio.gather(*tasks))


async def test_past_the_cap_and_the_queue_requests_get_an_immediate_503() -> None:
    gate = Gate()
    layer = gate.shed()
    responses = await send_all(layer, gate, ["/work"] * 5)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 503, 503]  # two running, one queued, two shed
    shed = next(r for r in responses if r.status_code == 503)
    assert_problem(shed, 503, "overloaded")
    assert shed.headers["retry-after"] == "1"
    assert gate.most == 2
    assert (layer.shed, layer.in_flight) == (2, 0)


async def test_probes_are_never_shed() -> None:
    gate = Gate()
    responses = await send_all(gate.shed(max_queued=0), gate, ["/work"] * 2 + ["/health"] * 3)
    assert [r.status_code for r in responses] == [200] * 5


async def test_a_queued_request_gives_up_after_the_queue_timeout() -> None:
    gate = Gate()
    layer = gate.shed(max_concurrent=1, queue_timeout=0.05)
    async with AsyncClient(transport=ASGITransport(app=layer), base_url="http://t") as client:
        first = asyncio.create_task(client.get("/work"))
        await asyncio.sleep(0.02)
        queued = await client.get("/work")  # waits 0.05 s for the slot, then gives up
        gate.open.set()
        assert (await first).status_code == 200
    assert_problem(queued, 503, "overloaded")
    assert (layer.in_flight, list(layer._waiting)) == (0, [])


async def test_slots_pass_to_queued_requests_in_order() -> None:
    gate = Gate()
    layer = gate.shed(max_concurrent=1, max_queued=3)
    responses = await send_all(layer, gate, ["/work"] * 4)
    assert [r.status_code for r in responses] == [200] * 4
    assert (gate.most, layer.in_flight) == (1, 0)


@pytest.mark.parametrize(
    "options",
    [{"max_concurrent": 0}, {"max_queued": -1}, {"queue_timeout": -1}, {"retry_after": 0}],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Gate().shed(**options)


def test_exempt_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="start with"):
        LoadShedMiddleware(
            Starlette(),
            max_concurrent=1,
            max_queued=0,
            queue_timeout=0,
            renderer=RENDERER,
            exempt=("health",),
        )
