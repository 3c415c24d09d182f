import uuid

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware

from app.core.problems import ProblemRenderer
from app.middleware.request_id import RequestIdMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from tests.middleware.apps import inline_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncClient:
    app = inline_app(
        Middleware(RequestIdMiddleware),
        Middleware(ServerErrorMiddleware, renderer=ProblemRenderer("https://errors.test/")),
    )
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize(
    "incoming", ["abc", "A.b-c_9", "x" * 128, "0b6c7a52-5f3e-4d2a-9c1b-8e4f2a7d3c91"]
)
async def test_valid_incoming_id_is_echoed(client: AsyncClient, incoming: str) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json() == {"request_id": incoming}


@pytest.mark.parametrize(
    "incoming", ["", "x" * 129, "has space", "semi;colon", b"\xfc", "a/b", "<script>"]
)
async def test_invalid_incoming_id_is_replaced_by_a_uuid4(
    client: AsyncClient, incoming: str | bytes
) -> None:
    raw = incoming if isinstance(incoming, bytes) else incoming.encode()
    response = await client.get("/items/1", headers=[(b"X-Request-ID", raw)])
    generated = response.headers["x-request-id"]
    assert generated != incoming
    assert uuid.UUID(generated).version == 4
    assert response.json() == {"request_id": generated}


async def test_each_request_gets_its_own_id(client: AsyncClient) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_errors_carry_the_request_id(client: AsyncClient) -> None:
    response = await client.get("/fail", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "err-1"
    assert response.json()["request_id"] == "err-1"


async def test_only_one_request_id_header_is_sent(client: AsyncClient) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": "one"})
    assert response.headers.get_list("x-request-id") == ["one"]
