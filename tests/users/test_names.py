"""Names a person or a key is told apart by: more than whitespace, stored trimmed, clearable.

Every request field that names something (an account's `full_name`, an API key's `name`) is
refused blank (422) and stored without the whitespace around it, on every route that sets it.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.harness import assert_problem
from tests.identity import DEFAULT_PASSWORD, register, signed_up
from tests.users.helpers import USERS, admin_headers, stored_user

pytestmark = pytest.mark.anyio

BLANKS = ["   ", "\t", "\n\n", " \r\n "]
PROOF = {"current_password": DEFAULT_PASSWORD}


async def _routes(app: FastAPI, client: AsyncClient) -> list[tuple[str, str, dict[str, str], str]]:
    """(method, path, headers, field) of every route that sets a name (a key: with a proof)."""
    me = await signed_up(client, "named@example.com")
    admin = await admin_headers(client, app, "names-admin@example.com")
    target = await register(client, "target@example.com", full_name="Old Name")
    return [
        ("PATCH", f"{USERS}/me", me, "full_name"),
        ("PATCH", f"{USERS}/{target['id']}", admin, "full_name"),
        ("POST", "/api/v1/api-keys", me, "name"),
    ]


def _proof(path: str) -> dict[str, str]:
    return PROOF if path.endswith("api-keys") else {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_blank_name_is_refused_everywhere(app: FastAPI, client: AsyncClient) -> None:
    registered = await client.post(
        USERS, json={"email": "blank@example.com", "password": DEFAULT_PASSWORD, "full_name": " "}
    )
    assert_problem(registered, 422, "validation_error")
    for method, path, headers, field in await _routes(app, client):
        for blank in BLANKS:
            body: dict[str, Any] = {field: blank, **_proof(path)}
            response = await client.request(method, path, json=body, headers=headers)
            assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_name_is_stored_trimmed(app: FastAPI, client: AsyncClient) -> None:
    for method, path, headers, field in await _routes(app, client):
        body: dict[str, Any] = {field: "  Ada Lovelace\t", **_proof(path)}
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        assert response.json()[field] == "Ada Lovelace", path


async def test_a_superuser_clears_a_name_with_null(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "null-admin@example.com")
    target = await register(client, "null-target@example.com", full_name="Old Name")
    path = f"{USERS}/{target['id']}"
    response = await client.patch(path, json={"full_name": None}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] is None
    stored = await stored_user(app, target["id"])
    assert stored is not None
    assert stored.full_name is None


@pytest.mark.parametrize("flag", ["is_active", "is_superuser"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_flag_is_true_or_false_never_null(
    app: FastAPI, client: AsyncClient, flag: str
) -> None:
    """Null cannot mean "leave it" (that is leaving it out) nor false: it was answered 200."""
    admin = await admin_headers(client, app, "flag-admin@example.com")
    target = await register(client, "flag-target@example.com")
    path = f"{USERS}/{target['id']}"
    response = await client.patch(path, json={flag: None, **PROOF}, headers=admin)
    body = assert_problem(response, 422, "validation_error")
    assert flag in str(body)
    document = app.openapi()["components"]["schemas"]["UserAdminUpdate"]["properties"][flag]
    assert document["type"] == "boolean"
    assert "anyOf" not in document
