"""The metrics middleware on tiny apps: what it reports for each request, and when."""

from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Response
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware

from app.middleware.metrics import MetricsMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from tests.middleware.apps import RENDERER

pytestmark = pytest.mark.anyio


@dataclass
class Recorder:
    """A `RequestObserver` that keeps what it hears."""

    in_flight: int = 0
    seen_in_flight: list[int] = field(default_factory=list)
    finished_requests: list[tuple[str, str, int]] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    replays: int = 0

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self.seen_in_flight.append(self.in_flight)
        self.in_flight -= 1
        self.finished_requests.append((method, route, status))
        self.durations.append(seconds)

    def replayed(self) -> None:
        self.replays += 1


def app_with(recorder: Recorder) -> FastAPI:
    app = FastAPI(
        middleware=[
            Middleware(MetricsMiddleware, observer=recorder, replayed_header="Idempotent-Replayed"),
            Middleware(ServerErrorMiddleware, renderer=RENDERER),
        ]
    )

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    @app.post("/things")
    async def create_thing(replay: bool = False) -> Response:
        headers = {"Idempotent-Replayed": "true"} if replay else {}
        return Response(status_code=201, headers=headers)

    @app.get("/replayed-get")
    async def replayed_get() -> Response:
        return Response(headers={"Idempotent-Replayed": "true"})

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    return app


def client_of(app: FastAPI) -> AsyncClient:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    return AsyncClient(transport=transport, base_url="http://testserver")


async def test_each_request_is_reported_with_its_route_template_and_status() -> None:
    recorder = Recorder()
    async with client_of(app_with(recorder)) as client:
        await client.get("/things/1")
        await client.get("/things/2")
        await client.get("/things/nope")
        await client.get("/nowhere/3")
        await client.request("PURGE", "/things/1")
        await client.get("/fail")
    assert recorder.finished_requests == [
        ("GET", "/things/{thing_id}", 200),
        ("GET", "/things/{thing_id}", 200),
        ("GET", "/things/{thing_id}", 422),
        ("GET", "unmatched", 404),
        ("OTHER", "/things/{thing_id}", 405),
        ("GET", "/fail", 500),
    ]
    assert recorder.in_flight == 0
    assert recorder.seen_in_flight == [1] * 6
    assert all(seconds > 0 for seconds in recorder.durations)


async def test_replays_are_reported_only_for_posts_that_carry_the_header() -> None:
    recorder = Recorder()
    async with client_of(app_with(recorder)) as client:
        await client.post("/things")
        await client.post("/things", params={"replay": "true"})
        await client.get("/replayed-get")
    assert recorder.replays == 1


async def test_other_scopes_pass_untouched() -> None:
    recorder = Recorder()
    seen: list[str] = []

    async def lifespan_app(scope: dict[str, str], receive: object, send: object) -> None:
        seen.append(scope["type"])

    layer = MetricsMiddleware(lifespan_app, observer=recorder)  # type: ignore[arg-type]
    await layer({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
    assert recorder.finished_requests == []
