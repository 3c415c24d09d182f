"""A request body gives each member once: a repeated JSON name or form field is a 422.

JSON leaves a repeated name to the parser (Python keeps the last; a proxy or filter in front
may read the first), and a form field sent twice is read the same way. The tests walk every
operation with a body in the document, and every route of the app for its route class, so an
operation added later is covered without a change here.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from httpx2 import AsyncClient, Response

from app.core.routing import FORM_MEDIA_TYPE, REPEATED_MEMBER, StrictBodyRoute
from app.main import create_app
from tests.harness import assert_problem, make_settings, pointers
from tests.identity import DEFAULT_PASSWORD, signed_up, unique_email

pytestmark = pytest.mark.anyio

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "openapi.json").read_text()
)
AN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01"


def _with_body(media_type: str) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path.replace("{item_id}", AN_ID).replace("{user_id}", AN_ID))
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        if media_type in operation.get("requestBody", {}).get("content", {})
    )


JSON_OPERATIONS = _with_body("application/json") + _with_body("application/merge-patch+json")


async def _send_json(
    client: AsyncClient, headers: dict[str, str], method: str, path: str, body: bytes
) -> Response:
    """Send `body` to a JSON operation in the media type it documents."""
    content_type = next(
        media
        for media in ("application/json", "application/merge-patch+json")
        if (method, path) in _with_body(media)
    )
    return await client.request(
        method, path, content=body, headers={**headers, "Content-Type": content_type}
    )


FORM_OPERATIONS = _with_body(FORM_MEDIA_TYPE)


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, through the routers the app includes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _routes(included.routes)


def test_every_route_checks_its_body() -> None:
    routes = list(_routes(create_app(make_settings()).routes))
    assert len(routes) >= len(JSON_OPERATIONS) + len(FORM_OPERATIONS)
    plain = [
        f"{route.methods} {route.path}"
        for route in routes
        if not isinstance(route, StrictBodyRoute)
    ]
    assert plain == []


def test_no_form_field_takes_a_list() -> None:
    # A repeated form field is refused whatever its name: right while none is an array.
    for schema in DOCUMENT["components"]["schemas"].values():
        if schema.get("title", "").startswith("Body_"):
            assert all(field.get("type") != "array" for field in schema["properties"].values())
    assert FORM_OPERATIONS


@pytest.mark.parametrize(
    ("method", "path"), JSON_OPERATIONS, ids=[f"{m} {p}" for m, p in JSON_OPERATIONS]
)
@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
async def test_a_json_body_naming_a_member_twice_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], method: str, path: str, nested: bool
) -> None:
    body = b'{"a": [0, {"x/y": 1, "x/y": 2}]}' if nested else b'{"name": "x", "name": "y"}'
    response = await _send_json(shared_client, shared_caller, method, path, body)
    problem = assert_problem(response, 422, "validation_error")
    pointer = "#/a/1/x~1y" if nested else "#/name"  # located like every body error
    assert problem["errors"] == [{"pointer": pointer, "detail": REPEATED_MEMBER}]


async def test_repeated_members_deep_in_a_body_are_each_located(
    shared_client: AsyncClient, shared_caller: dict[str, str]
) -> None:
    depth = 400
    body = b'{"b": 1, "b": 2, "c": ' + b"[" * depth + b'{"d": 1, "d": 2}' + b"]" * depth + b"}"
    method, path = JSON_OPERATIONS[0]
    response = await _send_json(shared_client, shared_caller, method, path, body)
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == ["#/b", "#/c" + "/0" * depth + "/d"]


@pytest.mark.parametrize(
    ("method", "path"), FORM_OPERATIONS, ids=[f"{m} {p}" for m, p in FORM_OPERATIONS]
)
async def test_a_form_giving_a_field_twice_is_refused(
    client: AsyncClient, method: str, path: str
) -> None:
    email = unique_email("fields")
    await signed_up(client, email)
    form = (
        f"username=nobody%40example.com&username={email.replace('@', '%40')}"
        "&password=p&password=q&other=1&other=2"  # `other` is not read: it may repeat
    )
    response = await client.request(
        method, path, content=form.encode(), headers={"Content-Type": FORM_MEDIA_TYPE}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert pointers(problem) == {"#/username", "#/password"}


async def test_a_body_with_distinct_names_is_read_once_and_served(client: AsyncClient) -> None:
    headers = await signed_up(client, unique_email("distinct"))
    body = {"title": "Lamp", "price": "1.00", "currency": "EUR", "tags": ["a", "b"]}
    response = await client.post("/api/v1/items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["tags"] == ["a", "b"]
    malformed = await client.post(
        "/api/v1/items",
        content=b'{"title": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed_body")
    deep = b"[" * 100_000 + b"]" * 100_000  # past the parser's recursion limit
    too_deep = await client.post(
        "/api/v1/items", content=deep, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(too_deep, 400, "malformed_body")


async def test_a_form_field_the_form_does_not_declare_may_repeat(client: AsyncClient) -> None:
    email = unique_email("undeclared")
    await signed_up(client, email)
    form = {"username": email, "password": DEFAULT_PASSWORD, "extra": ["1", "2"]}
    response = await client.post("/api/v1/auth/login", data=form)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path"), JSON_OPERATIONS, ids=[f"{m} {p}" for m, p in JSON_OPERATIONS]
)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "latin-1"])
async def test_a_json_body_in_another_encoding_than_utf_8_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], method: str, path: str, encoding: str
) -> None:
    """JSON between systems is UTF-8 (RFC 8259 section 8.1); the parser would read UTF-16 and
    UTF-32 too, which a filter in front reading UTF-8 sees as something else."""
    body = '{"title": "caf\u00e9", "name": "caf\u00e9"}'.encode(encoding)
    response = await _send_json(shared_client, shared_caller, method, path, body)
    assert_problem(response, 400, "malformed_body")


async def test_a_utf_8_body_may_begin_with_a_byte_order_mark(client: AsyncClient) -> None:
    """RFC 8259 section 8.1 lets a parser ignore it; the body is read as without it."""
    headers = await signed_up(client, unique_email("bom"))
    body = (
        b"\xef\xbb\xbf" + json.dumps({"title": "Lamp", "price": "1.00", "currency": "EUR"}).encode()
    )
    response = await client.post(
        "/api/v1/items", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Lamp"


def _without_body() -> list[tuple[str, str]]:
    """Every POST, PUT and PATCH of the document that documents no request body."""
    return sorted(
        (method.upper(), re.sub(r"\{\w+\}", AN_ID, path))
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        if method in {"post", "put", "patch"} and "requestBody" not in operation
    )


@pytest.mark.parametrize(("method", "path"), _without_body())
@pytest.mark.parametrize("body", [b'{"unexpected": 1}', b'{"truncated'], ids=["json", "broken"])
async def test_a_body_sent_to_an_operation_that_takes_none_is_refused(
    shared_client: AsyncClient, method: str, path: str, body: bytes
) -> None:
    """Else the body is ignored while the operation runs (an export queued, sessions ended)."""
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-checked"}
    response = await shared_client.request(method, path, content=body, headers=headers)
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert problem["detail"] == "This operation takes no request body."


def test_some_operation_takes_no_body() -> None:
    assert ("POST", "/api/v1/users/me/export") in _without_body()
