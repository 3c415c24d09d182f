"""A 204 answer has no content, and says nothing of a media type (RFC 9110 section 15.3.5).

docs/errors.md promises it and the document lists no content for a 204. FastAPI answers a 204
route with its default `JSONResponse` emptied, `Content-Type: application/json` kept, unless
the route class gives it a bare `Response` (`core.routing.StrictBodyRoute`).
"""

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from httpx2 import AsyncClient

from app.api import LOCAL_VERSIONED_ROUTERS, UNVERSIONED_ROUTERS, VERSIONED_ROUTERS
from tests.identity import DEFAULT_PASSWORD, bearer, login, make_superuser, register, unique_email

pytestmark = pytest.mark.anyio

DOCUMENT: dict[str, Any] = json.loads((Path(__file__).parents[1] / "openapi.json").read_text())
NO_CONTENT = sorted(
    f"{method.upper()} {path}"
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if "204" in operation["responses"]
)


# Each needs a token only a mail carries: the routes' classes are checked for them instead.
MAILED_TOKEN = {
    "POST /api/v1/auth/email-change/confirm",
    "POST /api/v1/auth/password-reset/confirm",
    "POST /api/v1/auth/verify-email",
}


def test_every_204_route_answers_with_no_media_type() -> None:
    routers = (*VERSIONED_ROUTERS, *LOCAL_VERSIONED_ROUTERS, *UNVERSIONED_ROUTERS)
    routes = [route for router in routers for route in router.routes]
    no_content = [r for r in routes if isinstance(r, APIRoute) and r.status_code == 204]
    assert len(no_content) == len(NO_CONTENT)
    for route in no_content:
        assert route.response_class is Response, route.path


async def _request(app: FastAPI, client: AsyncClient, path: str) -> dict[str, Any]:
    """What the operation at `path` needs to answer 204 for a new account."""
    email = unique_email("no-content")
    await register(client, email)
    tokens = await login(client, email)
    me = bearer(tokens)
    proof = {"current_password": DEFAULT_PASSWORD}
    if path.endswith("{key_id}"):
        key = await client.post("/api/v1/api-keys", json={"name": "k", **proof}, headers=me)
        return {"url": path.replace("{key_id}", key.json()["id"]), "headers": me}
    if path.endswith("{item_id}"):
        body = {"title": "t", "price": "1.00", "currency": "EUR"}
        item = await client.post("/api/v1/items", json=body, headers=me)
        return {"url": path.replace("{item_id}", item.json()["id"]), "headers": me}
    if path.endswith("{user_id}"):
        other = await register(client, unique_email("other"))
        await make_superuser(app, email)
        url = path.replace("{user_id}", other["id"])
        return {"url": url, "headers": me, "json": proof}
    bodies = {
        "/api/v1/auth/logout": {"refresh_token": tokens["refresh_token"]},
        "/api/v1/users/me/password": {**proof, "new_password": "a new horse battery"},
        "/api/v1/users/me": proof,
    }
    return {"url": path, "headers": me, **({"json": bodies[path]} if path in bodies else {})}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("operation", sorted(set(NO_CONTENT) - MAILED_TOKEN))
async def test_a_204_has_no_content_type(app: FastAPI, client: AsyncClient, operation: str) -> None:
    method, path = operation.split(" ")
    response = await client.request(method, **await _request(app, client, path))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "content-type" not in response.headers
    assert "content-length" not in response.headers or response.headers["content-length"] == "0"
