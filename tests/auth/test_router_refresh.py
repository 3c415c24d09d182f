"""Refresh tokens over the real app: rotation, storage as a digest, reuse, and expiry.

The database is read directly to see what is stored, and changed directly only for states the
API cannot reach (an expired refresh token, a deactivated user).
"""

import hashlib
import string
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.deps import resources_of
from tests.auth.helpers import (
    LOGOUT,
    ME,
    REFRESH,
    assert_unauthorized,
    claims_of,
    expire,
    purge,
    set_user,
    started,
    stored_refresh_token,
    stored_refresh_tokens,
)
from tests.harness import assert_problem
from tests.identity import bearer, login, register, unique_email

pytestmark = pytest.mark.anyio


URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


# --- Refresh tokens --------------------------------------------------------------------------


async def test_refresh_returns_a_new_pair_and_retires_the_old_token(
    client: AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    await register(client, email)
    first = await login(client, email)
    response = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["token_type"] == "bearer"
    assert second["expires_in"] == settings.auth.access_token_ttl_seconds
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The same session: the new access token names the same family.
    old_claims = claims_of(first["access_token"], settings)
    new_claims = claims_of(second["access_token"], settings)
    assert new_claims["sid"] == old_claims["sid"]
    assert new_claims["sub"] == old_claims["sub"]
    assert (await client.get(ME, headers=bearer(second))).status_code == 200
    third = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200, third.text


async def test_refresh_tokens_are_random_and_stored_only_as_a_digest(
    app: FastAPI, client: AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    user = await register(client, email)
    first = await login(client, email)
    second = await login(client, email)
    rotated = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()
    tokens = [first["refresh_token"], second["refresh_token"], rotated["refresh_token"]]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert len(token) >= 43  # 256 bits in URL-safe base64
        assert set(token) <= URL_SAFE
        assert len(set(token)) >= 16  # random-looking, not a counter or a padded id
    rows = {row.token_hash: row for row in await stored_refresh_tokens(app)}
    for token in tokens:
        assert hashlib.sha256(token.encode()).hexdigest() in rows
    # The plaintext is nowhere in the table, in any column.
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        raw_rows = (await session.execute(text("SELECT * FROM refresh_tokens"))).all()
    dumped = repr([tuple(map(str, row)) for row in raw_rows])
    assert len(raw_rows) == 3
    for token in tokens:
        assert token not in dumped
    first_row = await stored_refresh_token(app, first["refresh_token"])
    rotated_row = await stored_refresh_token(app, rotated["refresh_token"])
    second_row = await stored_refresh_token(app, second["refresh_token"])
    assert str(first_row.user_id) == user["id"]
    assert first_row.family_id == rotated_row.family_id != second_row.family_id
    assert first_row.rotated_at is not None
    assert rotated_row.rotated_at is None
    for row in (first_row, rotated_row, second_row):
        assert row.revoked_at is None
        lifetime = row.expires_at - row.created_at
        assert lifetime == timedelta(seconds=settings.auth.refresh_token_ttl_seconds)


async def test_reusing_a_rotated_refresh_token_revokes_its_family(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email()
    await register(client, email)
    original = (await login(client, email))["refresh_token"]
    other_session = await login(client, email)
    rotated = await client.post(REFRESH, json={"refresh_token": original})
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]

    replay = await client.post(REFRESH, json={"refresh_token": original})
    assert_unauthorized(replay)
    # The legitimate holder's newest token is dead too: the whole family is revoked.
    assert_unauthorized(await client.post(REFRESH, json={"refresh_token": newest}))
    family = (await stored_refresh_token(app, original)).family_id
    rows = [row for row in await stored_refresh_tokens(app) if row.family_id == family]
    assert len(rows) == 2
    assert all(row.revoked_at is not None for row in rows)
    # Another session of the same user is not touched.
    other = await client.post(REFRESH, json={"refresh_token": other_session["refresh_token"]})
    assert other.status_code == 200, other.text


async def test_unknown_and_malformed_refresh_tokens_are_refused(client: AsyncClient) -> None:
    unknown = await client.post(REFRESH, json={"refresh_token": "x" * 43})
    assert_unauthorized(unknown)
    assert_problem(await client.post(REFRESH, json={"refresh_token": ""}), 422)
    assert_problem(await client.post(REFRESH, json={}), 422)


async def test_an_expired_refresh_token_is_refused(settings: Settings) -> None:
    async with started(settings, REFRESH_TOKEN_TTL_SECONDS=60) as (app, client):
        email = unique_email()
        await register(client, email)
        tokens = await login(client, email)
        row = await stored_refresh_token(app, tokens["refresh_token"])
        assert row.expires_at - row.created_at == timedelta(seconds=60)
        await expire(app, tokens["refresh_token"])
        response = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert_unauthorized(response)
        # Still refused on a second try, and a fresh login still works.
        again = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert_unauthorized(again)
        fresh = await login(client, email)
        ok = await client.post(REFRESH, json={"refresh_token": fresh["refresh_token"]})
        assert ok.status_code == 200, ok.text


async def rotated_once(client: AsyncClient, email: str) -> tuple[str, str]:
    """Register `email`, log in, refresh once: the rotated (retired) token and its successor."""
    await register(client, email)
    first = (await login(client, email))["refresh_token"]
    rotated = await client.post(REFRESH, json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    return first, rotated.json()["refresh_token"]


@pytest.mark.parametrize("purged", [False, True], ids=["kept", "after-the-hourly-purge"])
async def test_replaying_a_rotated_token_revokes_the_family_even_once_it_expired(
    settings: Settings, purged: bool
) -> None:
    """A rotated token comes back only when it was copied; its age does not make that benign.

    The thief rotates a stolen token; the victim's client, back after the token's expiry,
    presents the old one: that is the only sign of the theft, so it must end the session. The
    hourly purge may have run meanwhile: a family's rows stay while any of its tokens may be
    used.
    """
    async with started(settings, REFRESH_TOKEN_TTL_SECONDS=60) as (app, client):
        stolen, thiefs_token = await rotated_once(client, unique_email())
        await expire(app, stolen)
        if purged:
            await purge(app)

        assert_unauthorized(await client.post(REFRESH, json={"refresh_token": stolen}))
        assert (await stored_refresh_token(app, thiefs_token)).revoked_at is not None
        assert_unauthorized(await client.post(REFRESH, json={"refresh_token": thiefs_token}))


async def test_the_hourly_purge_deletes_a_family_once_every_token_of_it_expired(
    settings: Settings,
) -> None:
    """Nothing of such a family can be used any more: its rows go, revoked or not."""
    async with started(settings, REFRESH_TOKEN_TTL_SECONDS=60) as (app, client):
        email = unique_email()
        first, newest = await rotated_once(client, email)
        revoked = (await login(client, email))["refresh_token"]
        assert (await client.post(LOGOUT, json={"refresh_token": revoked})).status_code == 204
        live = (await login(client, email))["refresh_token"]
        for token in (first, newest, revoked):
            await expire(app, token)
        families = {
            (await stored_refresh_token(app, token)).family_id for token in (first, revoked)
        }

        counts = await purge(app)

        left = {row.family_id for row in await stored_refresh_tokens(app)}
        assert not families & left
        assert counts["refresh_tokens"] >= 3
        assert (await stored_refresh_token(app, live)).revoked_at is None
        refreshed = await client.post(REFRESH, json={"refresh_token": live})
        assert refreshed.status_code == 200, refreshed.text


async def test_a_deactivated_user_cannot_refresh(app: FastAPI, client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    tokens = await login(client, email)
    await set_user(app, email, is_active=False)
    response = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert_unauthorized(response)
