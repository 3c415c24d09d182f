"""Password hashes behind the login: Argon2id, bcrypt upgrades, and constant work per failure.

The database is changed directly to store hashes the API never writes (bcrypt, plaintext,
outdated Argon2 parameters).
"""

import asyncio
import json

import anyio
import bcrypt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core.config import Settings
from app.deps import resources_of
from tests.auth.helpers import (
    LOGIN,
    LOGOUT,
    REFRESH,
    assert_unauthorized,
    login_response,
    set_user,
    started,
    stored_user,
)
from tests.harness import log_lines
from tests.identity import DEFAULT_PASSWORD, login, register, unique_email
from tests.security.races import WAIT_SECONDS, Gate, live_app

pytestmark = pytest.mark.anyio


# --- Password hashes -------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id(app: FastAPI, client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    hashed = (await stored_user(app, email)).hashed_password
    assert hashed is not None
    assert hashed.startswith("$argon2id$")
    assert DEFAULT_PASSWORD not in hashed


async def test_a_bcrypt_hash_verifies_and_is_upgraded_to_argon2id(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email()
    await register(client, email)
    legacy = bcrypt.hashpw(DEFAULT_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    await set_user(app, email, hashed_password=legacy)

    wrong = await login_response(client, email, "not the password")
    assert_unauthorized(wrong, "invalid_credentials")
    assert (await stored_user(app, email)).hashed_password == legacy  # untouched on failure

    response = await login_response(client, email)
    assert response.status_code == 200, response.text
    upgraded = (await stored_user(app, email)).hashed_password
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$")
    # The new hash is for the same password.
    assert (await login_response(client, email)).status_code == 200
    assert_unauthorized(
        await login_response(client, email, "not the password"), "invalid_credentials"
    )


async def test_a_bcrypt_hash_of_a_long_password_verifies(app: FastAPI, client: AsyncClient) -> None:
    """bcrypt only ever saw the first 72 bytes of a password; the login still sends all of it."""
    email = unique_email()
    await register(client, email)
    long_password = "a long passphrase, " * 6  # 114 bytes
    legacy = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    await set_user(app, email, hashed_password=legacy)
    response = await login_response(client, email, long_password)
    assert response.status_code == 200, response.text
    upgraded = (await stored_user(app, email)).hashed_password
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$")
    assert (await login_response(client, email, long_password)).status_code == 200


async def test_an_unknown_hash_format_fails_like_a_wrong_password(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email()
    await register(client, email)
    await set_user(app, email, hashed_password=DEFAULT_PASSWORD)  # plaintext: never accepted
    assert_unauthorized(await login_response(client, email), "invalid_credentials")


async def test_an_argon2_hash_with_outdated_parameters_is_upgraded(settings: Settings) -> None:
    async with started(settings, PASSWORD_HASH_TIME_COST=2) as (app, client):
        email = unique_email()
        await register(client, email)
        current = (await stored_user(app, email)).hashed_password
        assert current is not None
        assert ",t=2," in current
        cheaper = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
        outdated = cheaper.hash(DEFAULT_PASSWORD)
        await set_user(app, email, hashed_password=outdated)
        response = await login_response(client, email)
        assert response.status_code == 200, response.text
        upgraded = (await stored_user(app, email)).hashed_password
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$")
    assert ",t=2," in upgraded


async def test_two_logins_at_once_both_succeed_while_one_upgrades_the_hash(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-hash of the same password is no password change: the login it overtook succeeds.

    A script starting several sessions at once after a deploy (a bcrypt hash, or new
    PASSWORD_HASH_* settings) must not see 401s for the right password.
    """
    async with live_app(live_database_url) as (app, client):
        email = unique_email()
        await register(client, email)
        legacy = bcrypt.hashpw(DEFAULT_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        await set_user(app, email, hashed_password=legacy)
        gate = Gate()
        gate.install(monkeypatch, resources_of(app).password_hasher, "verify")
        gate.armed = True
        form = {"username": email, "password": DEFAULT_PASSWORD}
        first = asyncio.create_task(client.post(LOGIN, data=form))
        await asyncio.wait_for(gate.reached.wait(), WAIT_SECONDS)  # its password checked
        second = await client.post(LOGIN, data=form)  # re-hashes to Argon2id, commits
        assert second.status_code == 200, second.text
        upgraded = (await stored_user(app, email)).hashed_password
        gate.opened.set()

        response = await first
        assert response.status_code == 200, response.text
        assert upgraded is not None
        assert upgraded.startswith("$argon2id$")
        # The first login found the hash current: it wrote no hash of its own over it.
        assert (await stored_user(app, email)).hashed_password == upgraded


async def test_passwords_and_tokens_never_reach_the_logs(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    with log_lines() as logs:
        failed = await login_response(client, email, "a wrong password, secretly")
        tokens = await login(client, email)
        rotated = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        replayed = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        await client.post(LOGOUT, json={"refresh_token": rotated.json()["refresh_token"]})
    assert failed.status_code == 401
    assert replayed.status_code == 401
    written = json.dumps(logs.all())
    assert logs.events("login_failed")
    assert logs.events("refresh_token_reuse")
    for secret in (
        DEFAULT_PASSWORD,
        "a wrong password, secretly",
        tokens["access_token"],
        tokens["refresh_token"],
        rotated.json()["refresh_token"],
    ):
        assert secret not in written


@pytest.mark.parametrize("case", ["unknown email", "no password set", "wrong password"])
async def test_every_failed_login_costs_a_hash_verification(settings: Settings, case: str) -> None:
    """An unknown email is checked against a dummy hash, so it takes as long as a known one.

    Instead of timing it, the one hashing slot is held: a login that verifies a hash must wait
    for it, and one that skipped the work would answer at once.
    """
    async with started(settings, PASSWORD_HASH_CONCURRENCY=1) as (app, client):
        email = unique_email()
        await register(client, email)
        if case == "no password set":
            await set_user(app, email, hashed_password=None)
        attempt = unique_email("nobody") if case == "unknown email" else email
        limiter = resources_of(app).password_hasher.limiter
        assert limiter.total_tokens == 1
        responses: list[Response] = []

        async def log_in() -> None:
            responses.append(await login_response(client, attempt, "not the password"))

        async with anyio.create_task_group() as tasks, limiter:
            tasks.start_soon(log_in)
            with anyio.fail_after(10):
                # The limiter has no event to wait on: poll its statistics.
                while not responses and limiter.statistics().tasks_waiting == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            assert responses == [], "answered without waiting to verify a hash"
            assert limiter.statistics().tasks_waiting == 1
        assert len(responses) == 1
        assert_unauthorized(responses[0], "invalid_credentials")
