"""The caller's own account over the real app and databases: reading and changing it,
changing the password, and deleting it.
"""

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import update

from app.api_keys.models import ApiKey
from app.db.base import utcnow
from app.deps import resources_of
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import log_lines, pointers
from tests.identity import (
    DEFAULT_PASSWORD,
    bearer,
    login,
    login_status,
    mailed_token,
    register,
    signed_up,
)
from tests.users.helpers import (
    EMAIL_CHANGE,
    EMAIL_CHANGE_CONFIRM,
    LOGIN,
    ME,
    NEW_PASSWORD,
    REFRESH,
    refresh_status,
    refresh_token_rows,
    rows_of,
    stored_user,
)

pytestmark = pytest.mark.anyio


# --- The caller's own account ------------------------------------------------------------------


async def test_read_me_returns_the_caller(client: AsyncClient) -> None:
    created = await register(client, "me-read@example.com", full_name="Me")
    response = await client.get(ME, headers=bearer(await login(client, "me-read@example.com")))
    assert response.status_code == 200
    assert response.json() == created


async def test_update_me_changes_the_full_name(client: AsyncClient) -> None:
    headers = await signed_up(client, "me-name@example.com")
    response = await client.patch(ME, json={"full_name": "New Name"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "New Name"
    assert response.json()["email"] == "me-name@example.com"
    assert (await client.get(ME, headers=headers)).json()["full_name"] == "New Name"


async def mark_verified(app: FastAPI, user_id: str) -> None:
    async with resources_of(app).session_factory() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(user_id)).values(email_verified_at=utcnow())
        )
        await session.commit()


async def test_a_confirmed_email_change_moves_the_login(app: FastAPI, client: AsyncClient) -> None:
    user = await register(client, "me-old@example.com")
    headers = bearer(await login(client, "me-old@example.com"))
    await mark_verified(app, user["id"])
    assert (await client.get(ME, headers=headers)).json()["email_verified_at"] is not None

    with log_lines() as logs:
        response = await client.post(
            EMAIL_CHANGE, json={"email": " Me-New@Example.COM "}, headers=headers
        )
    assert response.status_code == 202, response.text
    token = mailed_token(logs, "me-new@example.com", "Confirm your new email address")
    confirmed = await client.post(EMAIL_CHANGE_CONFIRM, json={"token": token})
    assert confirmed.status_code == 204, confirmed.text
    stored = await stored_user(app, user["id"])
    assert stored is not None
    assert stored.email == "me-new@example.com"
    assert stored.email_verified_at is not None  # the token proved the new address

    assert await login_status(client, "me-new@example.com") == 200
    assert await login_status(client, "me-old@example.com") == 401


async def test_same_email_in_another_case_keeps_verification(
    app: FastAPI, client: AsyncClient
) -> None:
    user = await register(client, "me-same@example.com")
    headers = bearer(await login(client, "me-same@example.com"))
    await mark_verified(app, user["id"])
    response = await client.post(
        EMAIL_CHANGE, json={"email": "ME-SAME@example.com"}, headers=headers
    )
    problem(response, 409, "email_unchanged")
    me = (await client.get(ME, headers=headers)).json()
    assert me["email"] == "me-same@example.com"
    assert me["email_verified_at"] is not None


async def test_changing_to_another_accounts_email_is_a_conflict(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client, "me-taken@example.com")
    user = await register(client, "me-wants@example.com")
    headers = bearer(await login(client, "me-wants@example.com"))
    response = await client.post(
        EMAIL_CHANGE, json={"email": "Me-Taken@example.com"}, headers=headers
    )
    problem(response, 409, "email_taken")
    stored = await stored_user(app, user["id"])
    assert stored is not None
    assert stored.email == "me-wants@example.com"
    assert (await client.get(ME, headers=headers)).json()["email"] == "me-wants@example.com"


@pytest.mark.parametrize(
    "changes",
    [
        {"nickname": "x"},
        {"is_superuser": True},
        {"is_active": False},
        {"hashed_password": "x"},
        {"email_verified_at": "2020-01-01T00:00:00Z"},
    ],
    ids=["nickname", "is_superuser", "is_active", "hashed_password", "email_verified_at"],
)
async def test_update_me_refuses_unknown_fields(
    client: AsyncClient, changes: dict[str, Any]
) -> None:
    headers = await signed_up(client, "me-extra@example.com")
    response = await client.patch(ME, json={"full_name": "Kept", **changes}, headers=headers)
    body = problem(response, 422, "validation_error")
    assert pointers(body) == {f"#/{next(iter(changes))}"}
    me = (await client.get(ME, headers=headers)).json()
    assert me["full_name"] is None
    assert me["is_superuser"] is False
    assert me["is_active"] is True


async def test_update_me_refuses_an_invalid_email(client: AsyncClient) -> None:
    headers = await signed_up(client, "me-bad@example.com")
    response = await client.patch(ME, json={"email": "nope"}, headers=headers)
    assert pointers(problem(response, 422, "validation_error")) == {"#/email"}


# --- Password change ---------------------------------------------------------------------------


async def test_change_password_swaps_the_password(client: AsyncClient) -> None:
    await register(client, "pw-swap@example.com")
    headers = bearer(await login(client, "pw-swap@example.com"))
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await login_status(client, "pw-swap@example.com", DEFAULT_PASSWORD) == 401
    assert await login_status(client, "pw-swap@example.com", NEW_PASSWORD) == 200


async def test_change_password_revokes_other_sessions_only(client: AsyncClient) -> None:
    await register(client, "pw-sessions@example.com")
    this = await login(client, "pw-sessions@example.com")
    other = await login(client, "pw-sessions@example.com")
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(this),
    )
    assert response.status_code == 204, response.text

    assert await refresh_status(client, other["refresh_token"]) == 401
    assert (await client.get(ME, headers=bearer(this))).status_code == 200
    kept = await client.post(REFRESH, json={"refresh_token": this["refresh_token"]})
    assert kept.status_code == 200, kept.text
    # The rotated token of the kept session keeps working too.
    assert await refresh_status(client, kept.json()["refresh_token"]) == 200


async def test_change_password_with_a_wrong_current_password(client: AsyncClient) -> None:
    await register(client, "pw-wrong@example.com")
    tokens = await login(client, "pw-wrong@example.com")
    response = await client.post(
        f"{ME}/password",
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
        headers=bearer(tokens),
    )
    problem(response, 401, "wrong_password")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "not the password" not in response.text
    # Nothing changed: the old password still logs in, the new one does not, no session died.
    assert await login_status(client, "pw-wrong@example.com", NEW_PASSWORD) == 401
    assert await login_status(client, "pw-wrong@example.com", DEFAULT_PASSWORD) == 200
    assert await refresh_status(client, tokens["refresh_token"]) == 200


async def test_change_password_refuses_a_weak_new_password(client: AsyncClient) -> None:
    await register(client, "pw-weak@example.com")
    headers = bearer(await login(client, "pw-weak@example.com"))
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert pointers(problem(response, 422, "validation_error")) == {"#/new_password"}
    assert await login_status(client, "pw-weak@example.com", DEFAULT_PASSWORD) == 200


# --- Deleting one's own account ----------------------------------------------------------------


async def test_delete_me_removes_the_account_and_its_tokens(
    app: FastAPI, client: AsyncClient
) -> None:
    user = await register(client, "del-me@example.com")
    tokens = await login(client, "del-me@example.com")
    await login(client, "del-me@example.com")
    assert await refresh_token_rows(app, user["id"]) == 2
    key = await client.post("/api/v1/api-keys", json={"name": "mine"}, headers=bearer(tokens))
    assert key.status_code == 201, key.text
    assert await rows_of(app, ApiKey, user["id"]) == 1

    response = await client.delete(ME, headers=bearer(tokens))
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert await stored_user(app, user["id"]) is None
    assert await refresh_token_rows(app, user["id"]) == 0
    assert await rows_of(app, ApiKey, user["id"]) == 0
    assert await refresh_status(client, tokens["refresh_token"]) == 401
    problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
    problem(
        await client.post(
            LOGIN, data={"username": "del-me@example.com", "password": DEFAULT_PASSWORD}
        ),
        401,
        "invalid_credentials",
    )
    # The address is free again.
    await register(client, "del-me@example.com")
