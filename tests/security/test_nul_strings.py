"""Attack: send text PostgreSQL cannot store (NUL). Every text field answers 422, never 500."""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.types import NO_NUL_PATTERN
from app.main import create_app
from tests.harness import assert_problem, make_settings
from tests.identity import DEFAULT_PASSWORD, bearer, login, register
from tests.security.helpers import ITEMS, account

pytestmark = pytest.mark.anyio

NUL = "bad\u0000text"
# Never stored: a NUL there fails like any wrong credential (401), see test below.
UNSTORED_FORMS = {"Body_login_api_v1_auth_login_post", "Body_login_auth_login_post"}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def _strings(
    schema: dict[str, Any], spec: dict[str, Any], where: str
) -> list[tuple[str, dict[str, Any]]]:
    schema = _resolve(schema, spec)
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "string":
        found.append((where, schema))
    for name, sub in schema.get("properties", {}).items():
        found += _strings(sub, spec, f"{where}.{name}")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _strings(sub, spec, where)
    if "items" in schema:
        found += _strings(schema["items"], spec, f"{where}[]")
    return found


def _accepts_nul(schema: dict[str, Any]) -> bool:
    if "enum" in schema or "const" in schema or "format" in schema:
        return False  # closed sets, and formats whose validators refuse control characters
    pattern = schema.get("pattern")
    return pattern is None or re.search(pattern, NUL) is not None


def request_strings() -> list[str]:
    spec = create_app(make_settings()).openapi()
    open_fields = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            parameters = [
                p for p in operation.get("parameters", []) if p["in"] in ("query", "path")
            ]
            strings = [
                s for p in parameters for s in _strings(p["schema"], spec, f"{p['in']}:{p['name']}")
            ]
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media["schema"].get("$ref", "")
                if ref.rsplit("/", 1)[-1] not in UNSTORED_FORMS:
                    strings += _strings(media["schema"], spec, "body")
            open_fields += [
                f"{method.upper()} {path} {where}" for where, s in strings if _accepts_nul(s)
            ]
    return open_fields


def test_every_text_field_of_every_request_refuses_nul_in_the_schema() -> None:
    assert request_strings() == []


def test_the_shared_pattern_refuses_only_nul() -> None:
    assert re.fullmatch(NO_NUL_PATTERN, "any text, ünïcode and \t tabs")
    assert re.fullmatch(NO_NUL_PATTERN, NUL) is None


async def test_registration_and_profile_text(client: AsyncClient) -> None:
    refused = await client.post(
        "/api/v1/users",
        json={"email": "nul@example.com", "password": DEFAULT_PASSWORD, "full_name": NUL},
    )
    assert_problem(refused, 422, "validation_error")
    headers = await account(client, "nul@example.com")
    assert_problem(
        await client.patch("/api/v1/users/me", json={"full_name": NUL}, headers=headers), 422
    )
    assert_problem(
        await client.post(
            "/api/v1/users/me/password",
            json={"current_password": NUL, "new_password": DEFAULT_PASSWORD},
            headers=headers,
        ),
        422,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"title": NUL, "price": "1.00", "currency": "EUR"},
        {"title": "ok", "description": NUL, "price": "1.00", "currency": "EUR"},
        {"title": "ok", "tags": [NUL], "price": "1.00", "currency": "EUR"},
    ],
)
async def test_item_text(client: AsyncClient, body: dict[str, Any]) -> None:
    headers = await account(client, "items-nul@example.com")
    assert_problem(await client.post(ITEMS, json=body, headers=headers), 422, "validation_error")


async def test_item_changes_and_searches(client: AsyncClient) -> None:
    headers = await account(client, "patch-nul@example.com")
    item = (
        await client.post(
            ITEMS, json={"title": "ok", "price": "1.00", "currency": "EUR"}, headers=headers
        )
    ).json()
    patched = await client.patch(
        f"{ITEMS}/{item['id']}", json={"description": NUL}, headers=headers
    )
    assert_problem(patched, 422, "validation_error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/refresh", {"refresh_token": NUL}),
        ("/api/v1/auth/logout", {"refresh_token": NUL}),
        ("/api/v1/auth/password-reset/confirm", {"token": NUL, "new_password": DEFAULT_PASSWORD}),
        ("/api/v1/auth/verify-email", {"token": NUL}),
        ("/api/v1/auth/email-change/confirm", {"token": NUL}),
    ],
)
async def test_tokens(client: AsyncClient, path: str, body: dict[str, str]) -> None:
    assert_problem(await client.post(path, json=body), 422, "validation_error")


async def test_api_key_names(app: FastAPI, client: AsyncClient) -> None:
    await register(client, "key-nul@example.com")
    headers = bearer(await login(client, "key-nul@example.com"))
    response = await client.post(
        "/api/v1/api-keys",
        json={"name": NUL, "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert_problem(response, 422, "validation_error")


async def test_a_nul_in_the_login_form_is_a_failed_login(client: AsyncClient) -> None:
    await register(client, "form-nul@example.com")
    for form in (
        {"username": "form-nul@example.com\u0000", "password": DEFAULT_PASSWORD},
        {"username": "form-nul@example.com", "password": NUL},
    ):
        assert_problem(
            await client.post("/api/v1/auth/login", data=form), 401, "invalid_credentials"
        )
