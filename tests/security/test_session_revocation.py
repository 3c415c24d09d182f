"""Attack: keep using an access token after its session ended. Every ending takes effect at once."""

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.harness import counted_statements, log_lines
from tests.identity import DEFAULT_PASSWORD, bearer, login, register
from tests.security.helpers import ME, account, create_key, mailed_token, make_superuser

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a brand new passphrase"


async def test_logout_ends_the_sessions_access_token_at_once(client: AsyncClient) -> None:
    await register(client, "logout@example.com")
    tokens = await login(client, "logout@example.com")
    other = await login(client, "logout@example.com")
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200

    await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})

    assert (await client.get(ME, headers=bearer(tokens))).status_code == 401
    assert (await client.get(ME, headers=bearer(other))).status_code == 200  # another session


async def test_logout_all_ends_every_access_token(client: AsyncClient) -> None:
    await register(client, "all@example.com")
    first, second = [await login(client, "all@example.com") for _ in range(2)]
    response = await client.post("/api/v1/auth/logout-all", headers=bearer(first))
    assert response.status_code == 204
    for tokens in (first, second):
        assert (await client.get(ME, headers=bearer(tokens))).status_code == 401


async def test_a_password_change_ends_the_other_sessions_and_voids_reset_tokens(
    client: AsyncClient,
) -> None:
    email = "change@example.com"
    await register(client, email)
    current, other = [await login(client, email) for _ in range(2)]
    with log_lines() as logs:
        await client.post("/api/v1/auth/password-reset", json={"email": email})
    reset_token = mailed_token(logs, email, "Reset your password")

    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(current),
    )
    assert changed.status_code == 204
    assert (await client.get(ME, headers=bearer(current))).status_code == 200
    assert (await client.get(ME, headers=bearer(other))).status_code == 401
    # A reset mailed before the change cannot undo it.
    reused = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": reset_token, "new_password": "the attacker's choice"},
    )
    assert reused.status_code == 422


async def test_a_password_reset_ends_every_session_and_revokes_api_keys(
    client: AsyncClient,
) -> None:
    email = "recover@example.com"
    headers = await account(client, email)
    key = (await create_key(client, headers, current_password=DEFAULT_PASSWORD)).json()["key"]
    assert (await client.get(ME, headers={"X-API-Key": key})).status_code == 200
    with log_lines() as logs:
        await client.post("/api/v1/auth/password-reset", json={"email": email})
    token = mailed_token(logs, email, "Reset your password")

    reset = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    assert (await client.get(ME, headers=headers)).status_code == 401
    assert (await client.get(ME, headers={"X-API-Key": key})).status_code == 401


async def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(
    app: FastAPI, client: AsyncClient
) -> None:
    admin = await account(client, "admin@example.com")
    await make_superuser(app, "admin@example.com")
    user = await register(client, "target@example.com")
    tokens = await login(client, "target@example.com")
    target = f"/api/v1/users/{user['id']}"

    assert (await client.patch(target, json={"is_active": False}, headers=admin)).status_code == 200
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 401
    assert (await client.patch(target, json={"is_active": True}, headers=admin)).status_code == 200
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert (
        await client.get(ME, headers=bearer(await login(client, "target@example.com")))
    ).status_code == 200


async def test_refresh_token_reuse_ends_the_access_tokens_of_the_family(
    client: AsyncClient,
) -> None:
    await register(client, "reuse@example.com")
    first = await login(client, "reuse@example.com")
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert (await client.get(ME, headers=bearer(second))).status_code == 200

    replayed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replayed.status_code == 401
    assert (await client.get(ME, headers=bearer(second))).status_code == 401


async def test_the_check_rides_on_the_one_statement_that_loads_the_user(
    app: FastAPI, client: AsyncClient
) -> None:
    headers = await account(client, "cheap@example.com")
    with counted_statements(app, queries_only=True) as seen:
        assert (await client.get(ME, headers=headers)).status_code == 200
    assert len(seen) == 1, seen
    assert "refresh_tokens" in seen[0]
