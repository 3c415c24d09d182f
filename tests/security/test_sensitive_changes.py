"""Attack: take over an account with a stolen token or key by changing its email or password."""

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from tests.harness import assert_problem, client_for, log_lines, make_settings, running
from tests.identity import DEFAULT_PASSWORD, login, register
from tests.security.helpers import ME, account, create_key, mailed_token

pytestmark = pytest.mark.anyio

EMAIL_CHANGE = "/api/v1/users/me/email"
PASSWORD_CHANGE = "/api/v1/users/me/password"
CONFIRM = "/api/v1/auth/email-change/confirm"


async def full_key(client: AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    created = await create_key(client, headers, current_password=DEFAULT_PASSWORD)
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


async def test_an_api_key_with_every_scope_cannot_change_email_or_password(
    client: AsyncClient,
) -> None:
    key = await full_key(client, await account(client, "keyed@example.com"))
    email = await client.post(
        EMAIL_CHANGE,
        json={"email": "thief@example.com", "current_password": DEFAULT_PASSWORD},
        headers=key,
    )
    password = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "the thief's own"},
        headers=key,
    )
    assert_problem(email, 403, "api_key_not_allowed")
    assert_problem(password, 403, "api_key_not_allowed")


async def test_patch_can_no_longer_change_the_email(client: AsyncClient) -> None:
    headers = await account(client, "patch@example.com")
    response = await client.patch(ME, json={"email": "thief@example.com"}, headers=headers)
    assert_problem(response, 422, "validation_error")
    assert (await client.get(ME, headers=headers)).json()["email"] == "patch@example.com"


async def test_an_old_login_needs_the_current_password(settings: Settings) -> None:
    # FRESH_LOGIN_SECONDS=0: every token is "old"; only the password proves the caller.
    app = create_app(make_settings(DATABASE_URL=settings.database.url, FRESH_LOGIN_SECONDS=0))
    async with running(app), client_for(app) as client:
        headers = await account(client, "stale@example.com")
        without = await client.post(
            EMAIL_CHANGE, json={"email": "new@example.com"}, headers=headers
        )
        wrong = await client.post(
            EMAIL_CHANGE,
            json={"email": "new@example.com", "current_password": "guess"},
            headers=headers,
        )
        right = await client.post(
            EMAIL_CHANGE,
            json={"email": "new@example.com", "current_password": DEFAULT_PASSWORD},
            headers=headers,
        )
    assert_problem(without, 401, "fresh_login_required")
    assert_problem(wrong, 401, "wrong_password")
    assert right.status_code == 202


async def test_a_fresh_login_may_change_the_email_without_the_password(client: AsyncClient) -> None:
    headers = await account(client, "fresh@example.com")
    response = await client.post(
        EMAIL_CHANGE, json={"email": "fresh-new@example.com"}, headers=headers
    )
    assert response.status_code == 202


async def test_the_new_email_takes_effect_only_once_confirmed_and_the_old_one_is_told(
    client: AsyncClient,
) -> None:
    headers = await account(client, "before@example.com")
    with log_lines() as logs:
        asked = await client.post(
            EMAIL_CHANGE,
            json={"email": "after@example.com", "current_password": DEFAULT_PASSWORD},
            headers=headers,
        )
    assert asked.status_code == 202
    assert (await client.get(ME, headers=headers)).json()["email"] == "before@example.com"
    subjects = {(m["to"], m["subject"]) for m in logs.events("mail_sent")}
    assert ("before@example.com", "Your account's email is about to change") in subjects
    token = mailed_token(logs, "after@example.com", "Confirm your new email address")

    assert (await client.post(CONFIRM, json={"token": token})).status_code == 204
    me = (await client.get(ME, headers=headers)).json()
    assert me["email"] == "after@example.com"
    assert me["email_verified_at"] is not None
    assert (await client.post(CONFIRM, json={"token": token})).status_code == 422  # single use
    await login(client, "after@example.com")


async def test_a_taken_email_cannot_be_squatted(client: AsyncClient) -> None:
    await register(client, "colleague@example.com")
    headers = await account(client, "squatter@example.com")
    response = await client.post(
        EMAIL_CHANGE,
        json={"email": "colleague@example.com", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert_problem(response, 409, "email_taken")


async def test_current_password_guesses_are_throttled_like_logins(
    app: FastAPI, client: AsyncClient
) -> None:
    headers = await account(client, "guessed@example.com")
    limit = resources_of(app).settings.auth.login_max_attempts
    statuses = []
    for n in range(limit + 1):
        response = await client.post(
            PASSWORD_CHANGE,
            json={"current_password": f"guess {n}", "new_password": "whatever it is"},
            headers=headers,
        )
        statuses.append(response.status_code)
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429
    # And the right password is refused too while the throttle holds.
    blocked = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "whatever it is"},
        headers=headers,
    )
    assert_problem(blocked, 429, "rate_limited")
