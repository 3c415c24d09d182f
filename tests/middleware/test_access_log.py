import pytest
from fastapi import APIRouter, FastAPI
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from app.core.problems import ProblemRenderer
from app.middleware.access_log import AccessLogMiddleware
from app.middleware.request_id import RequestIdMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from tests.harness import log_lines

pytestmark = pytest.mark.anyio


def fastapi_app(*, process_time_header: bool = False) -> FastAPI:
    app = FastAPI(
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AccessLogMiddleware, process_time_header=process_time_header),
            Middleware(ServerErrorMiddleware, renderer=ProblemRenderer("https://errors.test/")),
        ]
    )

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    router = APIRouter(prefix="/api/v1/things")

    @router.get("/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    app.include_router(router)

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    return app


async def request(
    method: str, path: str, *, process_time_header: bool = False
) -> tuple[int, dict[str, str], list[dict[str, object]]]:
    app = fastapi_app(process_time_header=process_time_header)
    transport = ASGITransport(app=app, client=("203.0.113.9", 4711))
    with log_lines() as logs:
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(method, path)
    return response.status_code, dict(response.headers), logs.events("request")


async def test_one_line_per_request_with_the_route_template() -> None:
    status, headers, access = await request("GET", "/items/42")
    assert status == 200
    [line] = access
    assert line["method"] == "GET"
    assert line["route"] == "/items/{item_id}"
    assert line["path"] == "/items/42"
    assert line["status"] == 200
    assert line["client"] == "203.0.113.9"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert "x-process-time" not in headers  # it times the work behind an answer: off by default


async def test_process_time_header_when_asked() -> None:
    _, headers, _ = await request("GET", "/items/42", process_time_header=True)
    assert headers["x-process-time"].endswith("ms")


async def test_routes_of_included_routers_log_the_full_template() -> None:
    status, _, access = await request("GET", "/api/v1/things/7")
    assert status == 200
    assert [line["route"] for line in access] == ["/api/v1/things/{thing_id}"]


async def test_server_errors_are_logged_at_error_level() -> None:
    status, _, access = await request("GET", "/fail")
    assert status == 500
    [line] = access
    assert line["status"] == 500
    assert line["level"] == "error"


async def test_unmatched_routes_have_no_template() -> None:
    status, _, access = await request("GET", "/nowhere")
    assert status == 404
    [line] = access
    assert line["route"] is None
    assert line["path"] == "/nowhere"


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await AccessLogMiddleware(inner)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
