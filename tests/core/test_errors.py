import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Body, FastAPI, Header, Query
from httpx2 import AsyncClient
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from app.core.config import Settings
from app.core.errors import (
    AppError,
    ConflictError,
    ExternalServiceError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationFailedError,
)
from app.core.problems import snake_case_phrase
from tests.harness import PROBLEM, log_lines, started

pytestmark = pytest.mark.anyio

DOCS_ERRORS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


class Address(BaseModel):
    city: str = Field(min_length=1)


class Signup(BaseModel):
    email: str
    age: int = Field(ge=0)
    addresses: list[Address] = []


def add_failing_routes(app: FastAPI) -> None:
    """Routes only tests mount: each one fails in its own way."""

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 in an internal message")

    @app.get("/database-down")
    async def database_down() -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    @app.get("/app-error/{name}")
    async def app_error(name: str) -> None:
        raise APP_ERRORS[name]

    @app.post("/signup")
    async def signup(
        body: Annotated[Signup, Body()],
        limit: Annotated[int, Query(le=100)],
        x_tenant: Annotated[str, Header()],
    ) -> None:
        raise AssertionError("unreachable in these tests")


APP_ERRORS: dict[str, AppError] = {
    "not_found": NotFoundError("Widget 7 was not found."),
    "conflict": ConflictError("Widget 7 already exists."),
    "unauthorized": UnauthorizedError("Token expired."),
    "forbidden": ForbiddenError("Superusers only."),
    "validation": ValidationFailedError(
        "Bad combination.", errors=[{"detail": "too early", "pointer": "#/start"}]
    ),
    "rate_limited": RateLimitedError("Slow down.", retry_after=30),
    "unavailable": ServiceUnavailableError("Redis is down.", retry_after=5),
    "external": ExternalServiceError("The mail provider failed."),
}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with started(settings, add_failing_routes) as (_, client):
        yield client


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/no/such/route",
        "code": "not_found",
        "request_id": response.headers["x-request-id"],
    }


async def test_wrong_method_is_a_405_problem_with_allow(client: AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


async def test_allow_lists_every_method_of_a_path_served_by_several_routes(
    client: AsyncClient,
) -> None:
    response = await client.put("/api/v1/users/me")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_head_answers_like_get_without_a_body(client: AsyncClient) -> None:
    got = await client.get("/api/v1/health/live")
    head = await client.head("/api/v1/health/live")
    assert head.status_code == got.status_code == 200
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_unexpected_exception_is_a_generic_500(client: AsyncClient) -> None:
    with log_lines() as logs:
        response = await client.get("/boom", headers={"X-Request-ID": "trace-me-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "trace-me-1"
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == "trace-me-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text

    errors = logs.events("unhandled_exception")
    assert len(errors) == 1
    assert errors[0]["request_id"] == "trace-me-1"
    assert "Traceback" in errors[0]["exception"]
    assert "RuntimeError" in errors[0]["exception"]
    access = logs.events("request")
    assert [(a["status"], a["request_id"]) for a in access] == [(500, "trace-me-1")]


async def test_debug_names_the_exception_in_the_500(settings: Settings) -> None:
    async with started(settings, add_failing_routes, DEBUG=True) as (_, client):
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["exception"].startswith("RuntimeError: ")


@pytest.mark.parametrize("name", sorted(APP_ERRORS))
async def test_app_errors_render_as_problems(client: AsyncClient, name: str) -> None:
    error = APP_ERRORS[name]
    response = await client.get(f"/app-error/{name}")
    assert response.status_code == error.status_code
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == error.code
    assert body["title"] == error.title
    assert body["detail"] == error.detail
    assert body["type"] == "https://errors.example.invalid/" + error.code.replace("_", "-")
    assert body["instance"] == f"/app-error/{name}"
    assert body["request_id"] == response.headers["x-request-id"]
    for header, value in error.headers.items():
        assert response.headers[header] == value


async def test_error_headers_follow_the_contract(client: AsyncClient) -> None:
    unauthorized = await client.get("/app-error/unauthorized")
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    limited = await client.get("/app-error/rate_limited")
    assert limited.headers["retry-after"] == "30"
    unavailable = await client.get("/app-error/unavailable")
    assert unavailable.headers["retry-after"] == "5"
    validation = await client.get("/app-error/validation")
    assert validation.json()["errors"] == [{"detail": "too early", "pointer": "#/start"}]


async def test_request_validation_points_at_each_input(client: AsyncClient) -> None:
    response = await client.post(
        "/signup?limit=500",
        json={"email": "a@example.com", "age": -1, "addresses": [{"city": ""}]},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    located = {
        next(value for key, value in item.items() if key != "detail") for item in body["errors"]
    }
    assert located == {"#/age", "#/addresses/0/city", "limit", "x-tenant"}
    kinds = {key for item in body["errors"] for key in item if key != "detail"}
    assert kinds == {"pointer", "parameter", "header"}
    assert all(item["detail"] for item in body["errors"])
    assert "-1" not in json.dumps(body["errors"]), "input values are not echoed back"


@pytest.mark.parametrize(
    "body",
    [b'{"email": ', b'{"email": "\xff"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["truncated", "not-utf-8", "too-deep"],
)
async def test_every_malformed_body_is_one_400_problem(client: AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/signup?limit=1",
        content=body,
        headers={"content-type": "application/json", "x-tenant": "t"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "malformed_body"


async def test_problem_type_base_url_is_configurable(settings: Settings) -> None:
    base_url = "https://docs.example.com/errors"
    async with started(settings, add_failing_routes, PROBLEM_TYPE_BASE_URL=base_url) as (_, client):
        response = await client.get("/app-error/conflict")
    assert response.json()["type"] == "https://docs.example.com/errors/conflict"


def all_error_classes(cls: type[AppError] = AppError) -> list[type[AppError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(all_error_classes(sub))
    return found


def test_every_error_code_is_documented() -> None:
    documented = DOCS_ERRORS.read_text()
    codes = {cls.code for cls in all_error_classes()} | {
        "not_found", "method_not_allowed", "invalid_host", "internal_error", "validation_error",
    }  # fmt: skip
    missing = sorted(code for code in codes if f"`{code}`" not in documented)
    assert missing == []


def test_the_codes_table_gives_each_code_its_status_and_names_only_real_codes() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d{3}) \|", DOCS_ERRORS.read_text(), flags=re.MULTILINE)
    raised = {cls.code: int(cls.status_code) for cls in all_error_classes()}
    assert len(rows) == len({code for code, _ in rows}), "a code is listed twice"
    for code, status in rows:
        # A code no class raises is a bare HTTP status's: its phrase in snake case.
        expected = raised.get(code)
        assert int(status) == expected if expected else code == snake_case_phrase(int(status))
    assert raised.keys() <= {code for code, _ in rows}


def test_unauthorized_keeps_a_custom_challenge() -> None:
    error = UnauthorizedError(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert error.detail == "Unauthorized"


async def test_an_unreachable_database_is_a_503_to_retry(client: AsyncClient) -> None:
    with log_lines() as logs:
        response = await client.get("/database-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_unavailable"
    assert "locked" not in response.text
    assert logs.events("unhandled_exception") == []
    assert [line["error"] for line in logs.events("database_unavailable")] == ["OperationalError"]
