"""Every route that answers with a file sends it whole (`core.downloads`).

Starlette's `FileResponse` serves `Range` requests with statuses (206, 416) and media types
(multipart/byteranges, a text/plain 400) that no operation documents; `WholeFileResponse`
ignores ranges. Only `core.downloads` may use the plain class, so a file route added later
answers as the document says; tests/jobs/test_api.py sends the ranges to the one there is.
"""

import ast
from pathlib import Path

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from app.core.downloads import WholeFileResponse
from app.middleware.compression import CompressionMiddleware
from app.pipeline import GZIP_LEVEL, GZIP_MINIMUM_BYTES

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "app"
ALLOWED = PACKAGE / "core" / "downloads.py"
PLAIN = "FileResponse"


def _uses_plain_file_response(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and any(a.name == PLAIN for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == PLAIN:
            return True
    return False


def test_only_the_whole_file_response_uses_starlettes_file_response() -> None:
    assert _uses_plain_file_response(ALLOWED), "the check would pass on nothing"
    users = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ALLOWED and _uses_plain_file_response(path)
    ]
    assert users == [], f"file responses that serve ranges: {users}"


@pytest.mark.anyio
async def test_a_file_goes_gzipped_under_a_weak_etag(tmp_path: Path) -> None:
    """The tag is made of the file's time and size, so it is weak; and a weakly tagged
    response may be compressed (a strong tag names the uncompressed bytes)."""
    path = tmp_path / "result.json"
    path.write_text('{"items": [' + ", ".join(["1"] * GZIP_MINIMUM_BYTES) + "]}")

    async def download(request: Request) -> WholeFileResponse:
        return WholeFileResponse(path, media_type="application/json")

    middleware = [
        Middleware(CompressionMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)
    ]
    app = Starlette(routes=[Route("/result", download)], middleware=middleware)
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/result", headers={"Accept-Encoding": "gzip"})
    assert response.headers["etag"].startswith('W/"')
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == path.read_text()
