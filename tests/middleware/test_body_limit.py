"""The body limit (app/middleware/body_limit.py): every 413 is our problem, chunked bodies
included; first on an inline app, then through the real app with its per-route limits.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI, Form
from httpx2 import AsyncClient, Response
from starlette.middleware import Middleware

from app.core.config import Settings
from app.middleware.body_limit import BodyLimitMiddleware
from tests.harness import PROBLEM, log_lines, started
from tests.middleware.apps import RENDERER, body_client, nothing

pytestmark = pytest.mark.anyio

LIMIT = 1024
UPLOAD_LIMIT = 8 * 1024
TWO_KIB = {"data": "x" * 2048}


# --- on an inline app -----------------------------------------------------------------------


def limited_client(max_body_size: int) -> AsyncClient:
    return body_client(
        Middleware(BodyLimitMiddleware, max_body_size=max_body_size, renderer=RENDERER)
    )


async def test_the_body_limit_413_is_a_problem() -> None:
    async with limited_client(8) as c:
        small = await c.post("/items", content=b"12345678")
        large = await c.post("/items", content=b"123456789")
    assert small.status_code == 200
    assert large.status_code == 413
    assert large.headers["content-type"] == PROBLEM
    assert large.json()["code"] == "content_too_large"


async def test_a_chunked_body_over_the_limit_of_an_inline_app_is_a_413_problem() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"1234"

    async with limited_client(8) as c:
        response = await c.post("/items", content=chunks())
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


async def test_any_plain_413_to_a_request_with_a_body_becomes_a_problem() -> None:
    async with limited_client(1024) as c:
        response = await c.post("/text-413", json={"small": True})
        bodyless = await c.get("/text-413")
    assert response.status_code == 413
    assert response.json()["code"] == "content_too_large"
    # Without a body nothing was limited: the route's own answer passes as it is.
    assert bodyless.status_code == 413
    assert bodyless.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("size", [-1, 1.5, True, "1024"])
def test_bad_body_limits_are_refused(size: object) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        BodyLimitMiddleware(nothing, max_body_size=size, renderer=RENDERER)  # type: ignore[arg-type]


# --- through the real app --------------------------------------------------------------------


def add_limited_routes(app: FastAPI) -> None:
    """Routes only tests mount: the app-wide limit, a larger per-route one, form limits."""

    @app.post("/test/echo")
    async def echo(body: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
        return {"fields": len(body)}

    @app.post("/test/upload", max_body_size=UPLOAD_LIMIT)
    async def upload(body: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
        return {"fields": len(body)}

    @app.post("/test/form", form_limits={"max_fields": 2})
    async def form(name: Annotated[str, Form()]) -> dict[str, str]:
        return {"name": name}


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The real app with the routes above and a body limit of LIMIT bytes."""
    async with started(settings, add_limited_routes, MAX_REQUEST_BODY_BYTES=LIMIT) as (_, client):
        yield client


async def streamed(size: int, chunk: int = 256) -> AsyncIterator[bytes]:
    """A JSON body sent chunked, without `Content-Length`."""
    yield b'{"data": "'
    for _ in range(size // chunk):
        yield b"x" * chunk
    yield b'"}'


def assert_too_large(response: Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "content_too_large"
    assert problem["status"] == 413
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_a_body_under_the_limit_passes(limited: AsyncClient) -> None:
    response = await limited.post("/test/echo", json={"data": "x" * 512})
    assert response.status_code == 200


async def test_a_body_over_the_limit_is_a_413_problem(limited: AsyncClient) -> None:
    with log_lines() as logs:
        response = await limited.post("/test/echo", json=TWO_KIB)
    assert_too_large(response)
    # Refused cleanly: logged once as a 413, never as an error after the response started.
    assert [line["status"] for line in logs.events("request")] == [413]
    assert logs.events("exception_after_response_started") == []


async def test_a_chunked_body_over_the_limit_is_a_413_problem(limited: AsyncClient) -> None:
    response = await limited.post(
        "/test/echo", content=streamed(2048), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_too_large(response)


async def test_real_routes_are_limited_too(limited: AsyncClient) -> None:
    response = await limited.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 2048})
    assert_too_large(response)


async def test_the_limit_holds_even_where_the_body_is_never_read(limited: AsyncClient) -> None:
    response = await limited.post("/test/no-such-route", json=TWO_KIB)
    assert_too_large(response)


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_route_may_accept_more(limited: AsyncClient, chunked: bool) -> None:
    if chunked:
        response = await limited.post(
            "/test/upload", content=streamed(2048), headers={"Content-Type": "application/json"}
        )
    else:
        response = await limited.post("/test/upload", json=TWO_KIB)
    assert response.status_code == 200
    assert response.json() == {"fields": 1}


async def test_a_route_limit_is_still_a_limit(limited: AsyncClient) -> None:
    response = await limited.post("/test/upload", json={"data": "x" * (UPLOAD_LIMIT + 1)})
    assert_too_large(response)


async def test_too_many_form_fields_is_a_400_problem(limited: AsyncClient) -> None:
    response = await limited.post("/test/form", data={"name": "a", "b": "1", "c": "2"})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "bad_request"
    assert "Too many fields" in problem["detail"]


async def test_a_form_within_its_limits_passes(limited: AsyncClient) -> None:
    response = await limited.post("/test/form", data={"name": "a"})
    assert response.status_code == 200
    assert response.json() == {"name": "a"}


async def test_a_form_over_the_body_limit_is_a_413_problem(limited: AsyncClient) -> None:
    response = await limited.post("/test/form", data={"name": "x" * 2048})
    assert_too_large(response)
