"""Every user route needs a caller: no credentials, or a garbage token, is a 401."""

import uuid
from typing import Any

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem as problem
from tests.identity import bearer
from tests.users.helpers import ME, NEW_PASSWORD, USERS

pytestmark = pytest.mark.anyio


# --- Authentication is required ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ME, None),
        ("PATCH", ME, {"full_name": "X"}),
        ("POST", f"{ME}/password", {"current_password": "x", "new_password": NEW_PASSWORD}),
        ("DELETE", ME, None),
        ("GET", USERS, None),
        ("GET", f"{USERS}/{uuid.UUID(int=1)}", None),
        ("PATCH", f"{USERS}/{uuid.UUID(int=1)}", {"full_name": "X"}),
        ("DELETE", f"{USERS}/{uuid.UUID(int=1)}", None),
    ],
)
async def test_requests_without_credentials_are_401(
    client: AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body)
    problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_garbage_bearer_token_is_401(client: AsyncClient) -> None:
    response = await client.get(ME, headers=bearer("not-a-jwt"))
    problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
