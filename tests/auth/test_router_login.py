"""Logging in over the real app: the token pair, its claims, failures, and the legacy paths.

Everything goes through the real app over ASGI, on SQLite and PostgreSQL (and Redis where the
throttle uses it); the database is changed directly only to set up a state the API cannot
reach (an inactive or passwordless account).
"""

import secrets
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from tests.auth.helpers import (
    LEGACY_LOGIN,
    LEGACY_ME,
    LOGIN,
    ME,
    REFRESH,
    assert_unauthorized,
    claims_of,
    login_response,
    set_user,
    started,
    throttle_key,
)
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import bearer, login, register, unique_email

pytestmark = pytest.mark.anyio


# --- Login -----------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token_pair(client: AsyncClient, settings: Settings) -> None:
    email = unique_email()
    user = await register(client, email)
    response = await login_response(client, email)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == settings.auth.access_token_ttl_seconds == 900
    assert tokens["refresh_token"] != tokens["access_token"]
    me = await client.get(ME, headers=bearer(tokens))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == email


async def test_the_access_token_carries_the_documented_claims(
    client: AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    user = await register(client, email)
    before = int(datetime.now(UTC).timestamp())
    tokens = await login(client, email)
    after = int(datetime.now(UTC).timestamp())
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == settings.auth.jwt_algorithm == "HS256"
    claims = claims_of(tokens["access_token"], settings)
    assert set(claims) == {
        *("sub", "exp", "iat", "nbf", "jti", "iss", "aud", "type", "sid", "auth_time")
    }
    assert claims["sub"] == user["id"]
    assert claims["type"] == "access"
    assert claims["iss"] == settings.auth.jwt_issuer
    assert claims["aud"] == settings.auth.jwt_audience
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == settings.auth.access_token_ttl_seconds
    uuid.UUID(claims["sid"])
    # Every token is told apart by its id, even two issued in the same second.
    again = claims_of((await login(client, email))["access_token"], settings)
    assert again["jti"] != claims["jti"]
    assert again["sid"] != claims["sid"]  # a new login is a new session


async def test_the_access_token_lifetime_follows_the_setting(settings: Settings) -> None:
    async with started(settings, ACCESS_TOKEN_TTL_SECONDS=120) as (app, client):
        email = unique_email()
        await register(client, email)
        tokens = await login(client, email)
        claims = claims_of(tokens["access_token"], resources_of(app).settings)
    assert tokens["expires_in"] == 120
    assert claims["exp"] - claims["iat"] == 120


async def test_login_ignores_the_case_and_spaces_of_the_email(client: AsyncClient) -> None:
    email = unique_email("carol")
    await register(client, email)
    response = await login_response(client, f"  {email.upper()} ")
    assert response.status_code == 200, response.text


async def test_login_with_the_default_test_settings_works(database_url: str) -> None:
    """The settings every other test file gets: no JWT_SECRET of their own."""
    app = create_app(make_settings(DATABASE_URL=database_url))
    async with running(app), client_for(app) as client:
        email = unique_email()
        await register(client, email)
        response = await login_response(client, email)
        assert response.status_code == 200, response.text
        me = await client.get(ME, headers=bearer(response.json()))
        assert me.status_code == 200, me.text


@pytest.mark.parametrize(
    ("algorithm", "secret_length", "accepted"),
    [("HS256", 32, True), ("HS384", 40, False), ("HS512", 48, False), ("HS512", 64, True)],
)
async def test_production_needs_a_secret_as_long_as_the_algorithms_hash(
    settings: Settings, algorithm: str, secret_length: int, accepted: bool
) -> None:
    """RFC 7518, 3.2: an HMAC key MUST be at least as long as the hash (32, 48, 64 bytes).

    PyJWT warns on every token signed or checked with a shorter key; production should refuse
    such a secret at start-up instead of running with it.
    """
    production = {
        "DATABASE_URL": settings.database.url,
        "ENVIRONMENT": "production",
        "JWT_ALGORITHM": algorithm,
        # Random, and as long as given (URL-safe text carries ~6 bits a character).
        "JWT_SECRET": secrets.token_urlsafe(64)[:secret_length],
        "ALLOWED_HOSTS": "testserver",
    }
    if not accepted:
        with pytest.raises(ValueError, match="JWT_SECRET"):
            make_settings(**production)
        return
    app = create_app(make_settings(**production))
    async with running(app), client_for(app) as client:
        email = unique_email()
        await register(client, email)
        response = await login_response(client, email)
        assert response.status_code == 200, response.text
        assert jwt.get_unverified_header(response.json()["access_token"])["alg"] == algorithm
        assert (await client.get(ME, headers=bearer(response.json()))).status_code == 200


async def test_every_login_failure_gets_the_same_401(app: FastAPI, client: AsyncClient) -> None:
    known, inactive, passwordless = unique_email(), unique_email(), unique_email()
    for email in (known, inactive, passwordless):
        await register(client, email)
    await set_user(app, inactive, is_active=False)
    await set_user(app, passwordless, hashed_password=None)  # e.g. an account from OIDC
    failures = {
        "wrong password": await login_response(client, known, "not the password"),
        "unknown email": await login_response(client, unique_email("nobody")),
        "inactive, right password": await login_response(client, inactive),
        "no password set": await login_response(client, passwordless, "anything at all"),
    }
    bodies = {}
    for case, response in failures.items():
        body = assert_unauthorized(response, "invalid_credentials")
        assert response.headers["www-authenticate"] == "Bearer", case
        assert body["request_id"] == response.headers["x-request-id"], case
        assert body.pop("instance") == LOGIN, case
        del body["request_id"]
        bodies[case] = body
    first = bodies["wrong password"]
    assert first["detail"] == "The email or password is incorrect."
    for case, body in bodies.items():
        assert body == first, case
    # Nothing else tells the cases apart either: the same headers, bar the request's own.
    own = {"x-request-id", "x-process-time", "content-length"}
    headers = [{k: v for k, v in r.headers.items() if k not in own} for r in failures.values()]
    assert all(h == headers[0] for h in headers)
    assert len({r.headers["content-length"] for r in failures.values()}) == 1


async def test_login_needs_both_form_fields(client: AsyncClient) -> None:
    response = await client.post(LOGIN, data={"username": unique_email()})
    body = assert_problem(response, 422, "validation_error")
    assert {"detail": "Field required", "pointer": "#/password"} in body["errors"]
    json_body = await client.post(LOGIN, json={"username": "a@example.com", "password": "x"})
    assert_problem(json_body, 415, "unsupported_media_type")  # a form, not JSON


async def test_a_username_longer_than_the_schema_allows_is_refused_as_invalid(
    client: AsyncClient,
) -> None:
    """The form's documented bound (an email's 254 characters): 422 for anyone, account or not."""
    response = await client.post(
        LOGIN, data={"username": "a" * 400 + "@example.com", "password": "x"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in body["errors"]] == ["#/username"]


@pytest.mark.parametrize("store", ["database", "redis"])
@pytest.mark.parametrize("username", ["a\x00b@example.com"], ids=["NUL byte"])
async def test_an_impossible_email_is_an_ordinary_login_failure(
    settings: Settings, request: pytest.FixtureRequest, store: str, username: str
) -> None:
    """No account can have this email: the answer is the unknown email's 401, not a 500."""
    overrides = {}
    if store == "redis":
        overrides["REDIS_URL"] = request.getfixturevalue("redis_url_or_skip")
    nobody = unique_email("nobody")
    async with started(settings, **overrides) as (app, client):
        try:
            expected = assert_unauthorized(
                await login_response(client, nobody), "invalid_credentials"
            )
            response = await login_response(client, username, "whatever it is")
        finally:
            if (redis := resources_of(app).redis) is not None:
                await redis.delete(throttle_key(nobody, None), throttle_key(username, None))
    body = assert_unauthorized(response, "invalid_credentials")
    for answer in (body, expected):
        del answer["request_id"]
    assert body == expected
    assert response.headers["www-authenticate"] == "Bearer"


# --- Legacy paths ----------------------------------------------------------------------------


async def test_legacy_login_answers_like_the_versioned_one(
    client: AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    user = await register(client, email)
    response = await login_response(client, email, path=LEGACY_LOGIN)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == settings.auth.access_token_ttl_seconds
    assert claims_of(tokens["access_token"], settings)["sub"] == user["id"]
    # Its tokens are ordinary ones: they work on the versioned API and can be refreshed.
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200
    refreshed = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    wrong = await login_response(client, email, "not the password", path=LEGACY_LOGIN)
    assert assert_unauthorized(wrong, "invalid_credentials")["instance"] == LEGACY_LOGIN


async def test_legacy_me_returns_the_current_user(client: AsyncClient) -> None:
    email = unique_email()
    user = await register(client, email)
    tokens = await login(client, email)
    response = await client.get(LEGACY_ME, headers=bearer(tokens))
    assert response.status_code == 200, response.text
    assert response.json() == user
    assert "hashed_password" not in response.text
    assert_unauthorized(await client.get(LEGACY_ME), "not_authenticated")
    refresh_as_bearer = await client.get(LEGACY_ME, headers=bearer(tokens["refresh_token"]))
    assert_unauthorized(refresh_as_bearer)
