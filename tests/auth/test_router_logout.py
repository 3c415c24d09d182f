"""Logging out over the real app: one session, or every session of the user."""

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.auth.helpers import (
    LOGOUT,
    LOGOUT_ALL,
    REFRESH,
    assert_unauthorized,
    stored_refresh_token,
    stored_refresh_tokens,
    stored_user,
)
from tests.identity import bearer, login, register, unique_email

pytestmark = pytest.mark.anyio


# --- Logout ----------------------------------------------------------------------------------


async def test_logout_revokes_that_session_only(app: FastAPI, client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    first = await login(client, email)
    rotated = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()
    other = await login(client, email)

    response = await client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    assert_unauthorized(
        await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    )
    family = (await stored_refresh_token(app, first["refresh_token"])).family_id
    rows = [row for row in await stored_refresh_tokens(app) if row.family_id == family]
    assert rows
    assert all(row.revoked_at is not None for row in rows)
    still = await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    assert still.status_code == 200, still.text


async def test_logout_with_an_unknown_token_is_a_no_op(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    tokens = await login(client, email)
    response = await client.post(LOGOUT, json={"refresh_token": "y" * 43})
    assert response.status_code == 204
    ok = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert ok.status_code == 200, ok.text


async def test_logout_all_revokes_every_session_of_the_user(
    app: FastAPI, client: AsyncClient
) -> None:
    email, someone_else = unique_email(), unique_email()
    await register(client, email)
    await register(client, someone_else)
    sessions = [await login(client, email) for _ in range(3)]
    rotated = (
        await client.post(REFRESH, json={"refresh_token": sessions[0]["refresh_token"]})
    ).json()
    theirs = await login(client, someone_else)

    response = await client.post(LOGOUT_ALL, headers=bearer(sessions[1]))
    assert response.status_code == 204
    assert response.content == b""
    for token in [rotated["refresh_token"], *(s["refresh_token"] for s in sessions[1:])]:
        assert_unauthorized(await client.post(REFRESH, json={"refresh_token": token}))
    user_id = (await stored_user(app, email)).id
    mine = [row for row in await stored_refresh_tokens(app) if row.user_id == user_id]
    assert len(mine) == 4
    assert all(row.revoked_at is not None for row in mine)
    ok = await client.post(REFRESH, json={"refresh_token": theirs["refresh_token"]})
    assert ok.status_code == 200, ok.text
    # A new login after logging out everywhere starts a working session.
    fresh = await login(client, email)
    again = await client.post(REFRESH, json={"refresh_token": fresh["refresh_token"]})
    assert again.status_code == 200, again.text


async def test_logout_all_needs_an_access_token(client: AsyncClient) -> None:
    assert_unauthorized(await client.post(LOGOUT_ALL), "not_authenticated")
