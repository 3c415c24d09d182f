"""The content validation middleware on an inline app: allowed media types (415 otherwise)
and NUL bytes in the path or query (400).
"""

import json
from collections.abc import AsyncIterator, Sequence

import pytest
from httpx2 import AsyncClient
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from app.middleware.content_validation import (
    DEFAULT_ALLOWED_MEDIA_TYPES,
    REPEATED_HEADER,
    ContentValidationMiddleware,
)
from tests.harness import PROBLEM
from tests.middleware.apps import RENDERER, body_client, nothing

pytestmark = pytest.mark.anyio


def validating(allowed: Sequence[str] = DEFAULT_ALLOWED_MEDIA_TYPES) -> AsyncClient:
    return body_client(
        Middleware(ContentValidationMiddleware, renderer=RENDERER, allowed_media_types=allowed)
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_allowed_types_pass(method: str, content_type: str) -> None:
    async with validating() as c:
        response = await c.request(
            method, "/items", content=b"{}", headers={"Content-Type": content_type}
        )
    assert response.status_code == 200
    assert response.json() == {"bytes": 2}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/json-patch+json",
        "application/problem+json",
        "application/jsonx",
        "multipart/mixed; boundary=xyz",
        None,
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_other_types_with_a_body_get_a_415_problem(
    method: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with validating() as c:
        response = await c.request(method, "/items", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "unsupported_media_type"
    assert "application/json" in problem["detail"]


async def test_a_chunked_body_is_checked_too() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"<xml/>"

    async with validating() as c:
        response = await c.post("/items", content=chunks(), headers={"Content-Type": "text/xml"})
    assert response.status_code == 415


@pytest.mark.parametrize(
    "codings",
    [("gzip",), ("br",), ("deflate",), ("x-unknown",), ("GZIP",), ("identity, gzip",), ("", "br")],
    ids=["gzip", "br", "deflate", "unknown", "upper-case", "listed", "second-field"],
)
async def test_a_content_coded_body_gets_a_415_naming_identity(codings: tuple[str, ...]) -> None:
    headers = [("Content-Type", "application/json")]
    headers += [("Content-Encoding", coding) for coding in codings]
    async with validating() as c:
        response = await c.post("/items", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["accept-encoding"] == "identity"
    assert response.json()["code"] == "unsupported_content_encoding"


@pytest.mark.parametrize(
    ("method", "body", "coding"),
    [
        ("POST", b"{}", "identity"),
        ("POST", b"{}", ""),
        ("POST", b"", "gzip"),
        ("GET", b"x", "gzip"),
    ],
    ids=["identity", "empty", "no-body", "get-body-not-read"],
)
async def test_an_uncoded_or_unread_body_passes(method: str, body: bytes, coding: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    async with validating() as c:
        response = await c.request(method, "/items", content=body, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("Authorization", "Bearer a")], 200),
        ([("If-Match", '"1"'), ("If-Match", '"2"')], 200),  # a list: two lines are one list
        ([("Authorization", "Bearer a"), ("authorization", "Bearer b")], 422),
        ([("X-API-Key", "a"), ("X-API-Key", "a")], 422),
    ],
    ids=["once", "list-header", "twice-any-case", "twice-same-value"],
)
async def test_a_single_valued_header_sent_twice_is_a_422(
    headers: list[tuple[str, str]], status: int
) -> None:
    async with validating() as c:
        response = await c.get("/items", headers=headers)
    assert response.status_code == status


async def test_two_host_headers_are_a_422() -> None:
    # A client library sends one Host; the raw scope is what a server passes on for two.
    scope = http_scope("/items", b"/items")
    scope["headers"] = [(b"host", b"api.example.com"), (b"host", b"evil.example")]
    sent = await run_raw(scope)
    assert sent[0]["status"] == 422
    assert json.loads(sent[1]["body"])["errors"] == [{"header": "Host", "detail": REPEATED_HEADER}]


@pytest.mark.parametrize("content_type", [None, "text/plain"])
async def test_a_bodyless_post_passes(content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with validating() as c:
        response = await c.post("/items", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_other_methods_pass_with_any_type(method: str) -> None:
    async with validating() as c:
        response = await c.request(
            method, "/items", content=b"x", headers={"Content-Type": "text/csv"}
        )
    assert response.status_code == 200


async def test_the_allowlist_can_be_narrowed() -> None:
    async with validating(["application/json"]) as c:
        form = await c.post("/items", data={"a": "1"})
        json = await c.post("/items", json={"a": 1})
    assert form.status_code == 415
    assert form.json()["detail"] == "The request body must be one of: application/json."
    assert json.status_code == 200


def _only_deletes_read_csv(method: str, path: str) -> list[str] | None:
    return ["text/csv"] if (method, path) == ("DELETE", "/items") else None


@pytest.mark.parametrize(
    ("method", "content_type", "status"),
    [
        ("DELETE", "text/csv", 200),
        ("DELETE", "text/csv; charset=utf-8", 200),
        ("DELETE", "application/json", 415),  # in the allowlist, but not what it reads
        ("POST", "application/json", 200),  # no documented body: the allowlist
        ("POST", "text/csv", 415),
    ],
)
async def test_an_operation_reads_only_the_types_it_documents(
    method: str, content_type: str, status: int
) -> None:
    client = body_client(
        Middleware(
            ContentValidationMiddleware, renderer=RENDERER, documented=_only_deletes_read_csv
        )
    )
    async with client as c:
        response = await c.request(
            method, "/items", content=b"a,b", headers={"Content-Type": content_type}
        )
    assert response.status_code == status
    if status == 415 and method == "DELETE":
        assert response.json()["detail"] == "The request body must be one of: text/csv."


@pytest.mark.parametrize(
    "url", ["/items%00", "/items/%00/x", "/items?q=a%00b", "/items?q%00=1", "/items?q=%00"]
)
async def test_encoded_nul_bytes_get_a_400_problem(url: str) -> None:
    async with validating() as c:
        response = await c.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid_characters"


@pytest.mark.parametrize("url", ["/items%2Fx", "/items%2fx", "/a%2F..%2Fitems"])
async def test_an_encoded_slash_in_the_path_gets_a_400_problem(url: str) -> None:
    async with validating() as c:
        response = await c.get(url)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_characters"
    assert "%2F" in response.json()["detail"]


async def test_an_encoded_slash_in_the_query_passes() -> None:
    async with validating() as c:
        response = await c.get("/items?next=%2Fitems%2F1")
    assert response.status_code == 200


async def test_percent_signs_that_are_not_nul_pass() -> None:
    async with validating() as c:
        response = await c.get("/items?q=100%25&r=%2500")
    assert response.status_code == 200


async def run_raw(scope: Scope) -> list[Message]:
    """Send a hand-built scope through the middleware: for bytes a client would escape."""
    sent: list[Message] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("passed")(scope, receive, send)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await ContentValidationMiddleware(inner, renderer=RENDERER)(scope, receive, send)
    return sent


def http_scope(path: str, raw_path: bytes | None, query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": [],
    }


@pytest.mark.parametrize(
    "scope",
    [
        http_scope("/items\x00", b"/items\x00"),
        http_scope("/items\x00", None),  # servers need not send raw_path
        http_scope("/items", b"/items", b"q=a\x00b"),
    ],
)
async def test_raw_nul_bytes_get_a_400(scope: Scope) -> None:
    sent = await run_raw(scope)
    assert sent[0]["status"] == 400


async def test_a_clean_raw_scope_passes() -> None:
    sent = await run_raw(http_scope("/items", b"/items", b"q=1"))
    assert sent[0]["status"] == 200


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = ContentValidationMiddleware(inner, renderer=RENDERER)
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


@pytest.mark.parametrize(
    "allowed", [[], ["json"], ["application/json; charset=utf-8"], ["*/*"], ["application/"]]
)
def test_bad_allowlists_are_refused(allowed: list[str]) -> None:
    with pytest.raises(ValueError, match="without parameters"):
        ContentValidationMiddleware(nothing, renderer=RENDERER, allowed_media_types=allowed)
