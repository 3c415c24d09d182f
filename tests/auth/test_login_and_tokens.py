"""Login, access tokens, refresh-token rotation, logout, password hashes and login throttling.

Everything goes through the real app over ASGI, on SQLite and PostgreSQL (and Redis where the
throttle uses it); the database is read or changed directly only to look at what is stored or
to set up a state the API cannot reach (an old bcrypt hash, an expired refresh token).
"""

import base64
import hashlib
import json
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import bcrypt
import jwt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import LoginFailure, RefreshToken
from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem, client_for, log_lines, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer, login, register

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
# 64 bytes: long enough for every HMAC algorithm, so PyJWT has nothing to warn about.
JWT_SECRET = "test-secret-for-login-and-token-tests-0123456789abcdef0123456789"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
ME = "/api/v1/users/me"
LEGACY_LOGIN = "/auth/login"
LEGACY_ME = "/auth/me"
URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The suite's settings with a JWT secret of a proper length."""
    return make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET)


@asynccontextmanager
async def started(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """Run an app built from `settings` changed by `overrides`, and a client for it."""
    values = {"DATABASE_URL": settings.database.url, "JWT_SECRET": JWT_SECRET, **overrides}
    app = create_app(make_settings(**values))
    async with running(app), client_for(app) as client:
        yield app, client


def unique_email(name: str = "user") -> str:
    """An address no other test uses: failed logins kept in Redis outlive a test."""
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


def throttle_key(email: str) -> str:
    """The Redis key under which the login throttle counts the failures of `email`."""
    return "login-failures:" + hashlib.sha256(email.encode()).hexdigest()


def assert_unauthorized(response: Response, code: str = "invalid_token") -> dict[str, Any]:
    """Assert a 401 problem that tells the client to use a bearer token."""
    body = assert_problem(response, 401, code)
    assert response.headers["www-authenticate"].split(" ")[0] == "Bearer"
    return body


async def login_response(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD, path: str = LOGIN
) -> Response:
    return await client.post(path, data={"username": email, "password": password})


async def set_user(app: FastAPI, email: str, **values: Any) -> None:
    """Change a stored user directly (for states the API does not offer)."""
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        await session.execute(update(User).where(User.email == email).values(**values))
        await session.commit()


async def stored_user(app: FastAPI, email: str) -> User:
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


async def stored_refresh_tokens(app: FastAPI) -> list[RefreshToken]:
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        return list((await session.scalars(select(RefreshToken))).all())


async def stored_refresh_token(app: FastAPI, token: str) -> RefreshToken:
    digest = hashlib.sha256(token.encode()).hexdigest()
    rows = [row for row in await stored_refresh_tokens(app) if row.token_hash == digest]
    assert len(rows) == 1
    return rows[0]


async def expire(app: FastAPI, token: str) -> None:
    """Move a stored refresh token's expiry into the past (rather than waiting for it)."""
    row = await stored_refresh_token(app, token)
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


def claims_of(token: str, settings: Settings) -> dict[str, Any]:
    """Decode an access token the way a careful client of ours would."""
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.auth.jwt_secret.get_secret_value(),
        algorithms=[settings.auth.jwt_algorithm],
        audience=settings.auth.jwt_audience,
        issuer=settings.auth.jwt_issuer,
    )
    return claims


def valid_claims(settings: Settings, user_id: str, **changes: Any) -> dict[str, Any]:
    """The claims of a well-formed access token; `changes` replace (or, as None, drop) some."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "sid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=15),
        "jti": uuid.uuid4().hex,
        "iss": settings.auth.jwt_issuer,
        "aud": settings.auth.jwt_audience,
        "type": "access",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def forge(
    settings: Settings,
    user_id: str,
    *,
    key: str | None = None,
    algorithm: str | None = None,
    **changes: Any,
) -> str:
    """Sign an access token ourselves, with the app's secret unless told otherwise."""
    return jwt.encode(
        valid_claims(settings, user_id, **changes),
        key or settings.auth.jwt_secret.get_secret_value(),
        algorithm=algorithm or settings.auth.jwt_algorithm,
    )


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(settings: Settings, user_id: str) -> str:
    """An `alg=none` token with otherwise perfect claims, and an empty signature."""
    claims = valid_claims(settings, user_id)
    for name in ("iat", "nbf", "exp"):
        claims[name] = int(claims[name].timestamp())
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


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
    assert set(claims) == {"sub", "exp", "iat", "nbf", "jti", "iss", "aud", "type", "sid"}
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
        "JWT_SECRET": secrets.token_hex(64)[:secret_length],  # not a placeholder
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
    assert_problem(json_body, 422, "validation_error")  # a form, not JSON


@pytest.mark.parametrize("store", ["database", "redis"])
@pytest.mark.parametrize(
    "username",
    ["a" * 400 + "@example.com", "a\x00b@example.com"],
    ids=["longer than the email column", "NUL byte"],
)
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
                await redis.delete(throttle_key(nobody), throttle_key(username))
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


# --- Access tokens ---------------------------------------------------------------------------


async def test_a_forged_but_well_formed_token_is_accepted(
    client: AsyncClient, settings: Settings
) -> None:
    """The control for the rejections below: `forge` itself makes tokens the app accepts."""
    email = unique_email()
    user = await register(client, email)
    response = await client.get(ME, headers=bearer(forge(settings, user["id"])))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user["id"]


BAD_TOKENS: dict[str, Callable[[Settings, str], str]] = {
    "alg none": unsigned,
    "wrong signature": lambda s, sub: forge(s, sub, key="another-secret-" + "x" * 50),
    "other HMAC algorithm": lambda s, sub: forge(s, sub, algorithm="HS512"),
    "wrong audience": lambda s, sub: forge(s, sub, aud="someone-else"),
    "wrong issuer": lambda s, sub: forge(s, sub, iss="https://evil.example.com"),
    "expired": lambda s, sub: forge(
        s,
        sub,
        iat=datetime.now(UTC) - timedelta(minutes=20),
        nbf=datetime.now(UTC) - timedelta(minutes=20),
        exp=datetime.now(UTC) - timedelta(minutes=5),
    ),
    "not yet valid": lambda s, sub: forge(
        s,
        sub,
        nbf=datetime.now(UTC) + timedelta(minutes=10),
        exp=datetime.now(UTC) + timedelta(minutes=25),
    ),
    "refresh type": lambda s, sub: forge(s, sub, type="refresh"),
    "no type": lambda s, sub: forge(s, sub, type=None),
    "no jti": lambda s, sub: forge(s, sub, jti=None),
    "no expiry": lambda s, sub: forge(s, sub, exp=None),
    "no session id": lambda s, sub: forge(s, sub, sid=None),
    "subject not a uuid": lambda s, sub: forge(s, sub, sub="admin"),
    "unknown user": lambda s, sub: forge(s, sub, sub=str(uuid.uuid4())),
    "garbage": lambda s, sub: "not-a-jwt",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_access_tokens_are_refused(
    client: AsyncClient, settings: Settings, case: str
) -> None:
    email = unique_email()
    user = await register(client, email)
    token = BAD_TOKENS[case](settings, user["id"])
    for path in (ME, LEGACY_ME, LOGOUT_ALL):
        method = client.post if path == LOGOUT_ALL else client.get
        response = await method(path, headers=bearer(token))
        body = assert_unauthorized(response)
        assert body["instance"] == path


async def test_a_refresh_token_is_not_a_bearer_token(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    tokens = await login(client, email)
    assert_unauthorized(await client.get(ME, headers=bearer(tokens["refresh_token"])))
    assert_unauthorized(await client.post(LOGOUT_ALL, headers=bearer(tokens["refresh_token"])))


async def test_no_credentials_is_a_401(client: AsyncClient) -> None:
    response = await client.get(ME)
    assert_unauthorized(response, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_deactivated_users_access_token_stops_working(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email()
    await register(client, email)
    tokens = await login(client, email)
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200
    await set_user(app, email, is_active=False)
    assert_unauthorized(await client.get(ME, headers=bearer(tokens)))


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


async def test_replaying_a_rotated_token_revokes_the_family_even_once_it_expired(
    settings: Settings,
) -> None:
    """A rotated token comes back only when it was copied; its age does not make that benign.

    The thief rotates a stolen token; the victim's client, back after the token's expiry,
    presents the old one: that is the only sign of the theft, so it must end the session.
    """
    async with started(settings, REFRESH_TOKEN_TTL_SECONDS=60) as (app, client):
        email = unique_email()
        await register(client, email)
        stolen = (await login(client, email))["refresh_token"]
        response = await client.post(REFRESH, json={"refresh_token": stolen})
        assert response.status_code == 200, response.text
        thiefs_token = response.json()["refresh_token"]
        await expire(app, stolen)

        assert_unauthorized(await client.post(REFRESH, json={"refresh_token": stolen}))
        assert (await stored_refresh_token(app, thiefs_token)).revoked_at is not None
        assert_unauthorized(await client.post(REFRESH, json={"refresh_token": thiefs_token}))


async def test_a_deactivated_user_cannot_refresh(app: FastAPI, client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    tokens = await login(client, email)
    await set_user(app, email, is_active=False)
    response = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert_unauthorized(response)


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


# --- Login throttling ------------------------------------------------------------------------


async def exhaust(client: AsyncClient, email: str, attempts: int) -> None:
    for _ in range(attempts):
        response = await login_response(client, email, "not the password")
        assert_unauthorized(response, "invalid_credentials")


async def assert_throttled(client: AsyncClient, email: str, window: int) -> None:
    """Every attempt for `email` is refused now, with the right password as with a wrong one."""
    for password in (DEFAULT_PASSWORD, "not the password"):
        response = await login_response(client, email, password)
        body = assert_problem(response, 429, "rate_limited")
        assert "access_token" not in response.text
        assert body["instance"] == LOGIN
        retry_after = int(response.headers["retry-after"])
        assert window - 60 <= retry_after <= window


async def failures_stored(app: FastAPI, email: str) -> int:
    """How many failed logins of `email` the database throttle holds."""
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        query = select(func.count()).select_from(LoginFailure).where(LoginFailure.email == email)
        return await session.scalar(query) or 0


def throttle_emails() -> dict[str, str]:
    return {name: unique_email(name) for name in ("blocked", "bystander", "cleared", "ghost")}


async def check_throttle(app: FastAPI, client: AsyncClient, emails: dict[str, str]) -> None:
    """The behaviour both stores share."""
    settings: Settings = resources_of(app).settings
    limit, window = settings.auth.login_max_attempts, settings.auth.login_window_seconds
    assert limit == 5  # the default
    blocked, bystander, cleared = emails["blocked"], emails["bystander"], emails["cleared"]
    for email in (blocked, bystander, cleared):
        await register(client, email)

    # A success forgets earlier failures: limit - 1 failures, twice, never block.
    await exhaust(client, cleared, limit - 1)
    assert (await login_response(client, cleared)).status_code == 200
    await exhaust(client, cleared, limit - 1)
    assert (await login_response(client, cleared)).status_code == 200

    await exhaust(client, blocked, limit)
    await assert_throttled(client, blocked, window)
    # The key is the normalised email, so another spelling is blocked too.
    upper = await login_response(client, blocked.upper())
    assert_problem(upper, 429, "rate_limited")
    # Other accounts are unaffected.
    ok = await login_response(client, bystander)
    assert ok.status_code == 200, ok.text
    # Unknown emails are throttled the same way: nothing reveals whether an account exists.
    ghost = emails["ghost"]
    await exhaust(client, ghost, limit)
    await assert_throttled(client, ghost, window)
    # The legacy path shares the counter.
    legacy = await login_response(client, blocked, path=LEGACY_LOGIN)
    assert_problem(legacy, 429, "rate_limited")


async def test_login_throttle_with_the_database_store(app: FastAPI, client: AsyncClient) -> None:
    assert resources_of(app).redis is None
    emails = throttle_emails()
    await check_throttle(app, client, emails)
    blocked = emails["blocked"]
    # The failures are rows in the database: they survived the 401s' rolled-back requests.
    assert await failures_stored(app, blocked) == resources_of(app).settings.auth.login_max_attempts
    assert await failures_stored(app, emails["cleared"]) == 0  # a success deleted them


async def test_login_throttle_with_the_redis_store(
    settings: Settings, redis_url_or_skip: str
) -> None:
    async with started(settings, REDIS_URL=redis_url_or_skip) as (app, client):
        redis = resources_of(app).redis
        assert redis is not None
        emails = throttle_emails()
        keys = {name: throttle_key(email) for name, email in emails.items()}
        blocked = emails["blocked"]
        try:
            await check_throttle(app, client, emails)
            limit = resources_of(app).settings.auth.login_max_attempts
            assert await redis.zcard(keys["blocked"]) == limit
            assert await redis.zcard(keys["ghost"]) == limit
            assert not await redis.exists(keys["cleared"])  # a success deleted its failures
            assert await failures_stored(app, blocked) == 0  # nothing went to the database
        finally:
            await redis.delete(*keys.values())
