"""Access tokens as app/auth/deps.py checks them on every request: accepted and refused.

Tokens are forged here (signed with the app's secret or another, with claims changed or
dropped) and sent to the routes that need a caller, over the real app on SQLite and PostgreSQL.
"""

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.deps import resources_of
from tests.auth.helpers import LEGACY_ME, LOGOUT_ALL, ME, assert_unauthorized, set_user
from tests.harness import started
from tests.identity import bearer, login, register, unique_email

pytestmark = pytest.mark.anyio


def valid_claims(
    settings: Settings, user_id: str, session_id: str, **changes: Any
) -> dict[str, Any]:
    """The claims of a well-formed access token; `changes` replace (or, as None, drop) some."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "sid": session_id,
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
    session_id: str,
    *,
    key: str | None = None,
    algorithm: str | None = None,
    **changes: Any,
) -> str:
    """Sign an access token ourselves, with the app's secret unless told otherwise."""
    return jwt.encode(
        valid_claims(settings, user_id, session_id, **changes),
        key or settings.auth.jwt_secret.get_secret_value(),
        algorithm=algorithm or settings.auth.jwt_algorithm,
    )


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(settings: Settings, user_id: str, session_id: str) -> str:
    """An `alg=none` token with otherwise perfect claims, and an empty signature."""
    claims = valid_claims(settings, user_id, session_id)
    for name in ("iat", "nbf", "exp"):
        claims[name] = int(claims[name].timestamp())
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


# --- Access tokens ---------------------------------------------------------------------------


async def test_a_forged_but_well_formed_token_is_accepted(
    client: AsyncClient, settings: Settings
) -> None:
    """The control for the rejections below: `forge` itself makes tokens the app accepts."""
    user, session_id = await logged_in(client)
    response = await client.get(ME, headers=bearer(forge(settings, user["id"], session_id)))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user["id"]


async def logged_in(client: AsyncClient) -> tuple[dict[str, Any], str]:
    """Register and log in; return the user and the id of its live session."""
    user = await register(client, unique_email())
    tokens = await login(client, user["email"])
    session_id: str = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    return user, session_id


BAD_TOKENS: dict[str, Callable[[Settings, str, str], str]] = {
    "alg none": unsigned,
    "wrong signature": lambda s, sub, sid: forge(s, sub, sid, key="another-secret-" + "x" * 50),
    "other HMAC algorithm": lambda s, sub, sid: forge(s, sub, sid, algorithm="HS512"),
    "wrong audience": lambda s, sub, sid: forge(s, sub, sid, aud="someone-else"),
    "wrong issuer": lambda s, sub, sid: forge(s, sub, sid, iss="https://evil.example.com"),
    "expired": lambda s, sub, sid: forge(
        s,
        sub,
        sid,
        iat=datetime.now(UTC) - timedelta(minutes=20),
        nbf=datetime.now(UTC) - timedelta(minutes=20),
        exp=datetime.now(UTC) - timedelta(minutes=5),
    ),
    "not yet valid": lambda s, sub, sid: forge(
        s,
        sub,
        sid,
        nbf=datetime.now(UTC) + timedelta(minutes=10),
        exp=datetime.now(UTC) + timedelta(minutes=25),
    ),
    "refresh type": lambda s, sub, sid: forge(s, sub, sid, type="refresh"),
    "no type": lambda s, sub, sid: forge(s, sub, sid, type=None),
    "no jti": lambda s, sub, sid: forge(s, sub, sid, jti=None),
    "no expiry": lambda s, sub, sid: forge(s, sub, sid, exp=None),
    "no session id": lambda s, sub, sid: forge(s, sub, sid, sid=None),
    "subject not a uuid": lambda s, sub, sid: forge(s, sub, sid, sub="admin"),
    "unknown user": lambda s, sub, sid: forge(s, sub, sid, sub=str(uuid.uuid4())),
    "ended session": lambda s, sub, sid: forge(s, sub, str(uuid.uuid4())),
    "garbage": lambda s, sub, sid: "not-a-jwt",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_access_tokens_are_refused(
    client: AsyncClient, settings: Settings, case: str
) -> None:
    user, session_id = await logged_in(client)
    token = BAD_TOKENS[case](settings, user["id"], session_id)
    for path in (ME, LEGACY_ME, LOGOUT_ALL):
        method = client.post if path == LOGOUT_ALL else client.get
        response = await method(path, headers=bearer(token))
        body = assert_unauthorized(response)
        assert body["instance"] == path


# Signed with the app's own secret, so only a claim's type is wrong: a 401, never a 500 (a list
# `sid` once reached uuid.UUID, a huge `auth_time` datetime.fromtimestamp) nor a pass (a text
# `exp`, a fractional `auth_time`). `sub` and `sid` are the live session's where they appear.
WRONG_TYPED_CLAIMS: dict[str, Callable[[Settings, str, str], dict[str, Any]]] = {
    "sid a list": lambda s, sub, sid: {"sid": [sid]},
    "sid a number": lambda s, sub, sid: {"sid": 7},
    "sid an object": lambda s, sub, sid: {"sid": {"id": sid}},
    "sid true": lambda s, sub, sid: {"sid": True},
    "sid empty": lambda s, sub, sid: {"sid": ""},
    "sub a list": lambda s, sub, sid: {"sub": [sub]},
    "sub a number": lambda s, sub, sid: {"sub": 7},
    "auth_time text": lambda s, sub, sid: {"auth_time": "yesterday"},
    "auth_time a fraction": lambda s, sub, sid: {"auth_time": 1.5},
    "auth_time true": lambda s, sub, sid: {"auth_time": True},
    "auth_time a list": lambda s, sub, sid: {"auth_time": [0]},
    "auth_time past year 9999": lambda s, sub, sid: {"auth_time": 10**20},
    "auth_time before 1970": lambda s, sub, sid: {"auth_time": -(10**20)},
    "type a list": lambda s, sub, sid: {"type": ["access"]},
    "jti a number": lambda s, sub, sid: {"jti": 7},
    "exp text": lambda s, sub, sid: {"exp": "9999999999"},
    "exp infinite": lambda s, sub, sid: {"exp": float("inf")},
    "nbf a list": lambda s, sub, sid: {"nbf": [0]},
    "iat text": lambda s, sub, sid: {"iat": "0"},
    "aud an object": lambda s, sub, sid: {"aud": {"aud": s.auth.jwt_audience}},
}


@pytest.mark.parametrize("case", list(WRONG_TYPED_CLAIMS))
async def test_a_signed_token_with_a_wrong_typed_claim_is_refused(
    client: AsyncClient, settings: Settings, case: str
) -> None:
    user, session_id = await logged_in(client)
    claims = WRONG_TYPED_CLAIMS[case](settings, user["id"], session_id)
    token = forge(settings, user["id"], session_id, **claims)
    for path in (ME, LEGACY_ME, LOGOUT_ALL):
        method = client.post if path == LOGOUT_ALL else client.get
        assert_unauthorized(await method(path, headers=bearer(token)))


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


async def test_tokens_carry_and_must_carry_jwt_issuer_and_jwt_audience(settings: Settings) -> None:
    named: dict[str, Any] = {"JWT_ISSUER": "orders-service", "JWT_AUDIENCE": "orders-clients"}
    async with started(settings, **named) as (app, client):
        email = unique_email()
        user = await register(client, email)
        tokens = await login(client, email)
        own = resources_of(app).settings
        claims = jwt.decode(
            tokens["access_token"], options={"verify_signature": False}, algorithms=["HS256"]
        )
        assert (claims["iss"], claims["aud"]) == ("orders-service", "orders-clients")

        def me(**changes: str) -> Any:
            token = forge(own, user["id"], claims["sid"], **changes)
            return client.get(ME, headers=bearer(token))

        assert (await me()).status_code == 200
        assert_unauthorized(await me(iss=settings.auth.jwt_issuer))
        assert_unauthorized(await me(aud=settings.auth.jwt_audience))
