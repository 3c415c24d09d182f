"""Attack: keep a mailed token, or an API key, past the flow that ended the account's access.

A review took an account over this way: with a stolen session, ask to move the account to the
attacker's address; the owner resets the password (or changes it, logs out everywhere, or is
deactivated and reactivated by an administrator); the attacker then confirms the pending change
and owns the account. Every flow that ends the account's access voids every outstanding action
token, whatever its purpose; deactivation revokes every API key for good.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.harness import assert_problem, log_lines
from tests.identity import DEFAULT_PASSWORD, bearer, login, login_status, register
from tests.security.helpers import (
    ME,
    account,
    age_action_tokens,
    create_key,
    mailed_token,
    make_superuser,
)

pytestmark = pytest.mark.anyio

USERS = "/api/v1/users"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
VERIFY_REQUEST = "/api/v1/auth/verify-email/request"
VERIFY = "/api/v1/auth/verify-email"
EMAIL_CHANGE = f"{ME}/email"
EMAIL_CHANGE_CONFIRM = "/api/v1/auth/email-change/confirm"
PASSWORD_CHANGE = f"{ME}/password"
LOGOUT_ALL = "/api/v1/auth/logout-all"

VICTIM = "victim@example.com"
ADMIN = "admin@example.com"
ATTACKER = "evil@example.com"
NEW_PASSWORD = "a brand new passphrase"


@dataclass(frozen=True)
class Victim:
    """The account under attack, a login of its own, and a superuser to administer it."""

    id: str
    headers: dict[str, str]
    admin: dict[str, str]
    app: FastAPI


@pytest.fixture
async def victim(app: FastAPI, client: AsyncClient) -> Victim:
    user = await register(client, VICTIM)
    headers = bearer(await login(client, VICTIM))
    admin = await account(client, ADMIN)
    await make_superuser(app, ADMIN)
    return Victim(id=user["id"], headers=headers, admin=admin, app=app)


# --- the outstanding tokens: each returns the request that would spend it --------------------

Spend = tuple[str, dict[str, str]]


async def pending_reset(client: AsyncClient, victim: Victim) -> Spend:
    with log_lines() as logs:
        assert (await client.post(RESET, json={"email": VICTIM})).status_code == 202
    token = mailed_token(logs, VICTIM, "Reset your password")
    return RESET_CONFIRM, {"token": token, "new_password": "the attacker's choice"}


async def pending_verification(client: AsyncClient, victim: Victim) -> Spend:
    with log_lines() as logs:
        asked = await client.post(VERIFY_REQUEST, headers=victim.headers)
    assert asked.status_code == 202, asked.text
    return VERIFY, {"token": mailed_token(logs, VICTIM, "Confirm your email address")}


async def pending_email_change(client: AsyncClient, victim: Victim) -> Spend:
    with log_lines() as logs:
        asked = await client.post(
            EMAIL_CHANGE,
            json={"email": ATTACKER, "current_password": DEFAULT_PASSWORD},
            headers=victim.headers,
        )
    assert asked.status_code == 202, asked.text
    token = mailed_token(logs, ATTACKER, "Confirm your new email address")
    return EMAIL_CHANGE_CONFIRM, {"token": token}


PENDING: dict[str, Callable[[AsyncClient, Victim], Awaitable[Spend]]] = {
    "password reset": pending_reset,
    "email verification": pending_verification,
    "email change": pending_email_change,
}


# --- the flows that end the account's access -------------------------------------------------


async def reset_password(client: AsyncClient, victim: Victim) -> None:
    await age_action_tokens(victim.app)  # a reset mailed a while ago may be pending
    with log_lines() as logs:
        await client.post(RESET, json={"email": VICTIM})
    token = mailed_token(logs, VICTIM, "Reset your password")
    confirmed = await client.post(
        RESET_CONFIRM, json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text


async def change_password(client: AsyncClient, victim: Victim) -> None:
    changed = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=victim.headers,
    )
    assert changed.status_code == 204, changed.text


async def logout_all(client: AsyncClient, victim: Victim) -> None:
    assert (await client.post(LOGOUT_ALL, headers=victim.headers)).status_code == 204


async def deactivate_and_reactivate(client: AsyncClient, victim: Victim) -> None:
    target = f"{USERS}/{victim.id}"
    for active in (False, True):
        updated = await client.patch(target, json={"is_active": active}, headers=victim.admin)
        assert updated.status_code == 200, updated.text


async def change_email(client: AsyncClient, victim: Victim) -> None:
    with log_lines() as logs:
        await client.post(
            EMAIL_CHANGE,
            json={"email": "elsewhere@example.com", "current_password": DEFAULT_PASSWORD},
            headers=victim.headers,
        )
    token = mailed_token(logs, "elsewhere@example.com", "Confirm your new email address")
    assert (await client.post(EMAIL_CHANGE_CONFIRM, json={"token": token})).status_code == 204


async def delete_account(client: AsyncClient, victim: Victim) -> None:
    assert (await client.delete(ME, headers=victim.headers)).status_code == 204
    await register(client, VICTIM)  # the address is someone's again


async def delete_as_admin(client: AsyncClient, victim: Victim) -> None:
    deleted = await client.delete(f"{USERS}/{victim.id}", headers=victim.admin)
    assert deleted.status_code == 204
    await register(client, VICTIM)


ENDINGS: dict[str, Callable[[AsyncClient, Victim], Awaitable[None]]] = {
    "password reset": reset_password,
    "password change": change_password,
    "logout-all": logout_all,
    "deactivation and reactivation": deactivate_and_reactivate,
    "email change": change_email,
    "account deletion": delete_account,
    "deletion by a superuser": delete_as_admin,
}


@pytest.mark.parametrize("purpose", list(PENDING))
async def test_a_pending_token_works_while_nothing_ended(
    client: AsyncClient, victim: Victim, purpose: str
) -> None:
    """The control: each token the tests below hold back is a good one."""
    path, body = await PENDING[purpose](client, victim)
    spent = await client.post(path, json=body)
    assert spent.status_code == 204, spent.text


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("purpose", list(PENDING))
async def test_no_token_mailed_before_an_ending_works_after_it(
    client: AsyncClient, victim: Victim, purpose: str, ending: str
) -> None:
    path, body = await PENDING[purpose](client, victim)
    await ENDINGS[ending](client, victim)
    assert_problem(await client.post(path, json=body), 422, "invalid_action_token")


async def test_the_reviewed_takeover_fails(client: AsyncClient, victim: Victim) -> None:
    stolen = bearer(await login(client, VICTIM))
    with log_lines() as logs:
        asked = await client.post(EMAIL_CHANGE, json={"email": ATTACKER}, headers=stolen)
    assert asked.status_code == 202  # a fresh login needs no password
    token = mailed_token(logs, ATTACKER, "Confirm your new email address")

    await reset_password(client, victim)  # the owner takes the account back

    confirmed = await client.post(EMAIL_CHANGE_CONFIRM, json={"token": token})
    assert_problem(confirmed, 422, "invalid_action_token")
    assert (await client.get(ME, headers=stolen)).status_code == 401
    owner = bearer(await login(client, VICTIM, NEW_PASSWORD))
    assert (await client.get(ME, headers=owner)).json()["email"] == VICTIM
    assert await login_status(client, ATTACKER, NEW_PASSWORD) == 401


# --- API keys --------------------------------------------------------------------------------


async def key_family(client: AsyncClient, victim: Victim) -> list[dict[str, str]]:
    """A key of the victim's, and one that key minted."""
    created = await create_key(
        client,
        victim.headers,
        current_password=DEFAULT_PASSWORD,
        scopes=["api-keys:write", "users:read"],
    )
    parent = {"X-API-Key": created.json()["key"]}
    child = await create_key(client, parent, scopes=["users:read"])
    keys = [parent, {"X-API-Key": child.json()["key"]}]
    for key in keys:
        assert (await client.get(ME, headers=key)).status_code == 200
    return keys


@pytest.mark.parametrize(
    "ending",
    [
        "password reset",
        "deactivation and reactivation",
        "account deletion",
        "deletion by a superuser",
    ],
)
async def test_no_api_key_works_after_an_ending_that_revokes_keys(
    client: AsyncClient, victim: Victim, ending: str
) -> None:
    keys = await key_family(client, victim)
    await ENDINGS[ending](client, victim)
    for key in keys:
        assert_problem(await client.get(ME, headers=key), 401, "invalid_token")


async def test_deactivation_revokes_keys_and_reactivation_brings_none_back(
    client: AsyncClient, victim: Victim
) -> None:
    keys = await key_family(client, victim)
    target = f"{USERS}/{victim.id}"
    await client.patch(target, json={"is_active": False}, headers=victim.admin)
    for key in keys:
        assert (await client.get(ME, headers=key)).status_code == 401
    await client.patch(target, json={"is_active": True}, headers=victim.admin)
    for key in keys:
        assert (await client.get(ME, headers=key)).status_code == 401

    owner = bearer(await login(client, VICTIM))
    assert (await client.get("/api/v1/api-keys", headers=owner)).json()["total"] == 0
    fresh = await create_key(client, owner, current_password=DEFAULT_PASSWORD)
    assert (await client.get(ME, headers={"X-API-Key": fresh.json()["key"]})).status_code == 200
