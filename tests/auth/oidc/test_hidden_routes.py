"""OIDC mode through the real app: local login and password endpoints answer like unknown
routes, and are back in local mode.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response

from app.main import create_app
from tests.auth.oidc.helpers import me, user_count
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import DEFAULT_PASSWORD, JWT_SECRET, bearer

pytestmark = pytest.mark.anyio


# --- local login and password endpoints are hidden -----------------------------------------------

LOCAL_ONLY: dict[str, dict[str, Any]] = {
    "/api/v1/auth/login": {"data": {"username": "ada@example.com", "password": DEFAULT_PASSWORD}},
    "/auth/login": {"data": {"username": "ada@example.com", "password": DEFAULT_PASSWORD}},
    "/api/v1/users": {"json": {"email": "new@example.com", "password": DEFAULT_PASSWORD}},
    "/api/v1/auth/refresh": {"json": {"refresh_token": "some-refresh-token"}},
    "/api/v1/auth/logout": {"json": {"refresh_token": "some-refresh-token"}},
    "/api/v1/auth/logout-all": {},
    "/api/v1/auth/password-reset": {"json": {"email": "ada@example.com"}},
    "/api/v1/auth/password-reset/confirm": {
        "json": {"token": "some-reset-token", "new_password": "a new password 123"}
    },
    "/api/v1/auth/verify-email/request": {},
    "/api/v1/auth/verify-email": {"json": {"token": "some-verification-token"}},
    "/api/v1/users/me/password": {
        "json": {"current_password": DEFAULT_PASSWORD, "new_password": "a new password 123"}
    },
}
UNKNOWN = "/api/v1/auth/no-such-route"


def comparable(response: Response) -> tuple[int, str, dict[str, Any], list[str]]:
    """What must not tell an existing route from a missing one."""
    body = response.json()
    del body["instance"], body["request_id"]
    names = sorted(set(response.headers) - {"x-request-id", "x-process-time"})
    return response.status_code, response.headers["content-type"], body, names


@pytest.mark.parametrize("path", list(LOCAL_ONLY))
async def test_local_auth_endpoints_answer_like_an_unknown_route(
    app: FastAPI, client: AsyncClient, token: str, path: str
) -> None:
    await me(client, token)  # a provisioned user, so the bearer below is valid
    users_before = await user_count(app)

    for headers in ({}, bearer(token)):
        response = await client.post(path, headers=headers, **LOCAL_ONLY[path])
        if path in STILL_READABLE:
            assert_without_post(response)
            continue
        unknown = await client.post(unknown_like(path), headers=headers, **LOCAL_ONLY[path])
        body = assert_problem(response, 404, "not_found")
        assert body["instance"] == path
        assert comparable(response) == comparable(unknown)
    assert await user_count(app) == users_before


def unknown_like(path: str) -> str:
    """A path that never existed, in the same part of the URL space (API or legacy)."""
    return UNKNOWN if path.startswith("/api/") else "/auth/no-such-route"


# GET /api/v1/users (the admin list) exists in every mode, so POST there is 405, not 404.
STILL_READABLE = {"/api/v1/users"}


def assert_without_post(response: Response) -> None:
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" not in response.headers["allow"]


@pytest.mark.parametrize(
    "path", ["/api/v1/users", "/api/v1/auth/refresh", "/api/v1/auth/password-reset"]
)
async def test_local_auth_endpoints_answer_404_even_to_a_malformed_body(
    client: AsyncClient, path: str
) -> None:
    # An unknown route never reads the body; a hidden one must not reveal itself with a 422.
    headers = {"content-type": "application/json"}
    response = await client.post(path, content=b"{not json", headers=headers)
    if path in STILL_READABLE:
        assert_without_post(response)
        return
    unknown = await client.post(unknown_like(path), content=b"{not json", headers=headers)
    assert_problem(unknown, 404, "not_found")
    assert comparable(response) == comparable(unknown)


async def test_local_auth_endpoints_still_work_in_local_mode(database_url: str) -> None:
    # The 404s above come from the mode, not from routes that are missing altogether.
    app = create_app(make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET))
    async with running(app), client_for(app) as client:
        response = await client.post(
            "/api/v1/users", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 201, response.text
        login = await client.post("/api/v1/auth/login", data=LOCAL_ONLY["/auth/login"]["data"])
        assert login.status_code == 200, login.text
