import gzip
from collections.abc import AsyncIterator

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.middleware.compression import CompressionMiddleware
from app.pipeline import GZIP_LEVEL, GZIP_MINIMUM_BYTES

pytestmark = pytest.mark.anyio

BIG = "x" * (GZIP_MINIMUM_BYTES + 1)


async def big(request: Request) -> Response:
    return PlainTextResponse(BIG)


async def small(request: Request) -> Response:
    return PlainTextResponse("x" * (GZIP_MINIMUM_BYTES - 1))


async def events(request: Request) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        yield f"data: {BIG}\n\n".encode()

    return StreamingResponse(stream(), media_type="text/event-stream")


def client() -> AsyncClient:
    app = Starlette(
        routes=[Route("/big", big), Route("/small", small), Route("/events", events)],
        middleware=[
            Middleware(
                CompressionMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL
            )
        ],
    )
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")


async def test_responses_over_1_kib_are_compressed_for_clients_that_accept_it() -> None:
    response = await client().get("/big", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == BIG  # the client decoded it
    assert int(response.headers["content-length"]) < len(BIG)


async def test_small_responses_and_other_clients_get_plain_bodies() -> None:
    small_response = await client().get("/small", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small_response.headers
    identity = await client().get("/big", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in identity.headers


async def test_event_streams_are_never_compressed() -> None:
    response = await client().get("/events", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text.startswith("data: x")


def test_the_level_compresses() -> None:
    assert len(gzip.compress(BIG.encode(), compresslevel=GZIP_LEVEL)) < len(BIG) // 10


@pytest.mark.parametrize(("size", "level"), [(-1, 6), (0, 0), (0, 10)])
def test_bad_options_are_refused(size: int, level: int) -> None:
    with pytest.raises(ValueError, match="compresslevel"):
        CompressionMiddleware(big, minimum_size=size, compresslevel=level)  # type: ignore[arg-type]
