"""Every route that answers with a file sends it whole, from a file opened once (`core.downloads`).

Starlette's `FileResponse` serves `Range` requests with statuses (206, 416) and media types
(multipart/byteranges, a text/plain 400) that no operation documents, and opens the path again
as it answers (a file removed in between is a 500, or a cut connection). No module uses it; a
file route added later answers through `WholeFileResponse` as the document says.
tests/jobs/test_api.py sends ranges and conditions to the file route there is.
"""

import ast
import os
from email.utils import formatdate
from pathlib import Path

import anyio
import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.downloads import WholeFileResponse, open_download

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "app"
PLAIN = "FileResponse"
CONTENT = b'{"profile": {}, "items": []}' * 5000  # several chunks
WRITTEN = 1_700_000_000  # the file's modification time


def _uses_plain_file_response(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and any(a.name == PLAIN for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == PLAIN:
            return True
    return False


def test_no_module_answers_with_starlettes_file_response() -> None:
    assert _uses_plain_file_response("from starlette.responses import FileResponse")
    assert _uses_plain_file_response("import starlette.responses as r\nr.FileResponse")
    users = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if _uses_plain_file_response(path.read_text())
    ]
    assert users == [], f"file responses that serve ranges or open the file late: {users}"


@pytest.fixture
def result(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    path.write_bytes(CONTENT)
    os.utime(path, (WRITTEN, WRITTEN))
    return path


async def serve(request: Request) -> Response:
    """The file at `?path=`, opened, then removed when `?remove=1`: before the answer begins."""
    path = Path(request.query_params["path"])
    opened = await open_download(path)
    if opened is None:
        return Response(status_code=404)
    if request.query_params.get("remove"):
        await anyio.Path(path).unlink()  # a newer export replacing it, or the purge
    return WholeFileResponse(
        opened,
        media_type="application/json",
        filename=request.query_params.get("name", "result.json"),
        if_none_match=request.headers.get("if-none-match"),
        if_modified_since=request.headers.get("if-modified-since"),
    )


def client() -> AsyncClient:
    app = Starlette(routes=[Route("/file", serve)])
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")


async def test_the_file_goes_whole_with_its_validators(result: Path) -> None:
    response = await client().get("/file", params={"path": str(result)})
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-length"] == str(len(CONTENT))
    assert response.headers["accept-ranges"] == "none"
    assert response.headers["etag"].startswith('W/"')
    assert response.headers["last-modified"] == formatdate(WRITTEN, usegmt=True)
    assert response.headers["content-disposition"] == 'attachment; filename="result.json"'


async def test_a_name_beyond_ascii_is_percent_encoded(result: Path) -> None:
    params = {"path": str(result), "name": "résumé.json"}
    response = await client().get("/file", params=params)
    assert response.headers["content-disposition"] == (
        "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.json"
    )


async def test_a_file_removed_once_opened_is_still_sent_whole(result: Path) -> None:
    response = await client().get("/file", params={"path": str(result), "remove": "1"})
    assert not await anyio.Path(result).exists()
    assert response.status_code == 200
    assert response.content == CONTENT


@pytest.mark.parametrize("path", ["missing.json", "."], ids=["missing", "a-directory"])
async def test_what_is_no_regular_file_is_not_opened(tmp_path: Path, path: str) -> None:
    assert await open_download(tmp_path / path) is None


async def test_the_tag_held_is_a_304_without_a_body(result: Path) -> None:
    first = await client().get("/file", params={"path": str(result)})
    tag = first.headers["etag"]
    for held in (tag, tag.removeprefix("W/"), f'"other", {tag}', "*"):
        again = await client().get(
            "/file", params={"path": str(result)}, headers={"If-None-Match": held}
        )
        assert again.status_code == 304, held
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert "content-length" not in again.headers
    other = await client().get(
        "/file", params={"path": str(result)}, headers={"If-None-Match": '"other"'}
    )
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (formatdate(WRITTEN, usegmt=True), 304),
        (formatdate(WRITTEN + 60, usegmt=True), 304),
        (formatdate(WRITTEN - 1, usegmt=True), 200),
        ("not a date", 200),
    ],
    ids=["at-the-write", "after-it", "before-it", "invalid"],
)
async def test_if_modified_since_is_answered(result: Path, since: str, status: int) -> None:
    response = await client().get(
        "/file", params={"path": str(result)}, headers={"If-Modified-Since": since}
    )
    assert response.status_code == status


async def test_if_none_match_decides_when_both_are_sent(result: Path) -> None:
    """RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present."""
    unchanged = formatdate(WRITTEN, usegmt=True)
    headers = {"If-None-Match": '"other"', "If-Modified-Since": unchanged}
    response = await client().get("/file", params={"path": str(result)}, headers=headers)
    assert response.status_code == 200
