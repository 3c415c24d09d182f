import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.downloads import WholeFileResponse, open_download
from app.middleware.compression import CompressionMiddleware
from app.pipeline import GZIP_LEVEL, GZIP_MINIMUM_BYTES

pytestmark = pytest.mark.anyio

BIG = "x" * (GZIP_MINIMUM_BYTES + 1)


async def big(request: Request) -> Response:
    return PlainTextResponse(BIG)


async def small(request: Request) -> Response:
    return PlainTextResponse("x" * (GZIP_MINIMUM_BYTES - 1))


async def tagged(request: Request) -> Response:
    return PlainTextResponse(BIG, headers={"ETag": request.query_params["tag"]})


async def download(request: Request) -> Response:
    opened = await open_download(Path(request.query_params["path"]))
    assert opened is not None
    return WholeFileResponse(opened, media_type="application/json", filename="result.json")


async def events(request: Request) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        yield f"data: {BIG}\n\n".encode()

    return StreamingResponse(stream(), media_type="text/event-stream")


def client() -> AsyncClient:
    app = Starlette(
        routes=[
            Route("/big", big),
            Route("/small", small),
            Route("/tagged", tagged),
            Route("/download", download),
            Route("/events", events),
        ],
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


@pytest.mark.parametrize(
    ("accepted", "gzipped"),
    [
        ("gzip", True),
        ("br, GZIP;q=0.5", True),
        ("deflate, gzip ; q=1.0", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000, br", False),
        ("gzip;q=nothing", False),
        ("x-gzip-like, identity", False),
        ("*", False),
    ],
)
async def test_gzip_only_when_the_client_accepts_it(accepted: str, gzipped: bool) -> None:
    response = await client().get("/big", headers={"Accept-Encoding": accepted})
    assert (response.headers.get("content-encoding") == "gzip") is gzipped
    assert response.text == BIG


async def test_a_strongly_tagged_response_goes_out_as_the_app_wrote_it() -> None:
    """A strong ETag names exact bytes: the gzipped ones would need another tag."""
    response = await client().get("/tagged?tag=%221%22", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert response.headers["etag"] == '"1"'
    assert response.headers["content-length"] == str(len(BIG))
    assert response.text == BIG


async def test_a_weakly_tagged_response_is_compressed() -> None:
    """A weak validator promises equivalent content only: the coding does not change it."""
    response = await client().get("/tagged?tag=W/%221%22", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["etag"] == 'W/"1"'
    assert response.text == BIG


async def test_a_download_goes_gzipped_under_a_weak_etag(tmp_path: Path) -> None:
    """A file's tag is made of its time and size, so it is weak (`core.downloads`), and a
    large export is compressed like any weakly tagged response."""
    path = tmp_path / "result.json"
    path.write_text(BIG)
    gzip_accepted = {"Accept-Encoding": "gzip"}
    response = await client().get("/download", params={"path": str(path)}, headers=gzip_accepted)
    assert response.headers["etag"].startswith('W/"')
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == BIG


@pytest.mark.parametrize("accepted", ["gzip", "identity"])
async def test_the_head_of_a_download_has_the_headers_of_its_get(
    tmp_path: Path, accepted: str
) -> None:
    """Compression decides on the body it sees: a HEAD sent without one went uncompressed."""
    path = tmp_path / "result.json"
    path.write_text(BIG)
    asked = {"params": {"path": str(path)}, "headers": {"Accept-Encoding": accepted}}
    get = await client().get("/download", **asked)  # type: ignore[arg-type]
    head = await client().head("/download", **asked)  # type: ignore[arg-type]
    assert (get.status_code, head.status_code) == (200, 200)
    names = ("content-encoding", "vary", "content-length", "content-type", "etag")
    assert {name: head.headers.get(name) for name in names} == {
        name: get.headers.get(name) for name in names
    }
    assert ("content-encoding" in get.headers) is (accepted == "gzip")


def test_the_level_compresses() -> None:
    assert len(gzip.compress(BIG.encode(), compresslevel=GZIP_LEVEL)) < len(BIG) // 10


@pytest.mark.parametrize(("size", "level"), [(-1, 6), (0, 0), (0, 10)])
def test_bad_options_are_refused(size: int, level: int) -> None:
    with pytest.raises(ValueError, match="compresslevel"):
        CompressionMiddleware(big, minimum_size=size, compresslevel=level)  # type: ignore[arg-type]
