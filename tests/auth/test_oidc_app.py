"""AUTH_PROVIDER=oidc through the real app: bearer tokens from an external issuer.

The issuer is real enough: an RSA key made here, its JWKS served over HTTP on loopback (and
fetched by the app's own async HTTP client), tokens signed with PyJWT. Everything goes through
the app over ASGI, on SQLite and PostgreSQL; the database is read directly to see what was
stored, and changed directly only for states the API cannot reach in this mode (a local
account, the first superuser).
"""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.security import create_access_token
from app.deps import attach_resources, resources_of
from app.infra.oidc import OidcVerifier
from app.main import create_app
from app.users import service as users_service
from app.users.models import User
from tests.auth.jwks import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    JwksServer,
    b64,
    claims,
    hand_made,
    public_jwk,
    serving,
    sign,
)
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
# 64 bytes, so PyJWT has nothing to warn about when a test mints a local access token.
JWT_SECRET = "test-secret-for-oidc-app-tests-0123456789abcdef0123456789abcdefgh"
KID = "rsa-1"
NEW_KID = "rsa-2"
CACHE_SECONDS = 300
# OidcVerifier's default pause between two fetches of the JWKS.
MIN_REFETCH = 10.0
ME = "/api/v1/users/me"
LEGACY_ME = "/auth/me"
KEYS_UNAVAILABLE = "The identity provider's keys could not be fetched."


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    """The issuer's JWKS endpoint, publishing `rsa_key` as KID."""
    httpd = JwksServer()
    httpd.publish(public_jwk(rsa_key, KID, alg="RS256", use="sig"))
    with serving(httpd):
        yield httpd


def oidc_settings(database_url: str, jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "AUTH_PROVIDER": "oidc",
        "OIDC_ISSUER": ISSUER,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_JWKS_URL": jwks_url,
        "OIDC_JWKS_CACHE_SECONDS": CACHE_SECONDS,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def settings(database_url: str, jwks: JwksServer) -> Settings:
    """OIDC mode against the loopback issuer; conftest's `app` and `client` are built from it."""
    return oidc_settings(database_url, jwks.url)


@pytest.fixture
def token(rsa_key: rsa.RSAPrivateKey) -> str:
    """A valid token for subject user-123 (ada@example.com, verified)."""
    return sign(rsa_key, KID)


def session_factory_of(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    return factory


async def stored_users(app: FastAPI) -> list[User]:
    async with session_factory_of(app)() as session:
        return list((await session.scalars(select(User).order_by(User.created_at))).all())


async def user_count(app: FastAPI) -> int:
    async with session_factory_of(app)() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def stored_user(app: FastAPI, user_id: str) -> User:
    async with session_factory_of(app)() as session:
        user = await session.get(User, uuid.UUID(user_id))
    assert user is not None
    return user


async def create_local_account(app: FastAPI, email: str) -> User:
    """A password account as local mode made it (registration answers 404 in OIDC mode)."""
    async with session_factory_of(app)() as session:
        user = await users_service.create(
            session=session,
            hasher=resources_of(app).password_hasher,
            email=email,
            password=DEFAULT_PASSWORD,
        )
        await session.commit()
    return user


async def set_user(app: FastAPI, user_id: str, **values: Any) -> None:
    async with session_factory_of(app)() as session:
        await session.execute(update(User).where(User.id == uuid.UUID(user_id)).values(**values))
        await session.commit()


async def me(client: AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def assert_invalid_token(response: Response) -> dict[str, Any]:
    body = assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    return body


def use_fake_clock(app: FastAPI, jwks: JwksServer) -> FakeClock:
    """Give the app a verifier like its own, on its own HTTP client, but with a clock we move.

    The verifier waits MIN_REFETCH seconds of real time between two JWKS fetches; moving a
    clock keeps the rotation and TTL tests fast.
    """
    clock = FakeClock()
    resources = resources_of(app)
    verifier = OidcVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks.url,
        cache_seconds=CACHE_SECONDS,
        http=resources.http,
        clock=clock,
        min_refetch_interval=MIN_REFETCH,
    )
    attach_resources(app, resources.replace(oidc_verifier=verifier))
    return clock


# --- wiring ----------------------------------------------------------------------------------


async def test_lifespan_builds_the_verifier_from_settings(app: FastAPI, jwks: JwksServer) -> None:
    verifier = resources_of(app).oidc_verifier
    assert isinstance(verifier, OidcVerifier)
    assert (verifier.issuer, verifier.audience, verifier.jwks_url) == (ISSUER, AUDIENCE, jwks.url)
    assert jwks.requests == 0  # keys are fetched on first use, not at start-up


async def test_local_mode_has_no_verifier(database_url: str) -> None:
    app = create_app(make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET))
    async with running(app):
        assert resources_of(app).oidc_verifier is None


# --- first sight: provisioning -----------------------------------------------------------------


async def test_valid_token_creates_the_user_on_first_sight(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    assert await user_count(app) == 0

    first = await me(client, token)
    second = await me(client, token)

    assert first["email"] == "ada@example.com"
    assert (first["is_active"], first["is_superuser"], first["full_name"]) == (True, False, None)
    assert second["id"] == first["id"]
    [user] = await stored_users(app)
    assert str(user.id) == first["id"]
    assert user.external_subject == "user-123"
    assert user.hashed_password is None  # no password: it cannot log in locally
    assert jwks.requests == 1  # the keys were cached for the second request


async def test_legacy_me_accepts_the_token_too(
    app: FastAPI, client: AsyncClient, token: str
) -> None:
    created = await me(client, token)
    legacy = await client.get(LEGACY_ME, headers=bearer(token))
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["id"] == created["id"]
    assert await user_count(app) == 1


async def test_each_subject_gets_its_own_user(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    ada = await me(client, sign(rsa_key, KID, sub="sub-ada", email="ada@example.com"))
    bob = await me(client, sign(rsa_key, KID, sub="sub-bob", email="bob@example.com"))
    assert ada["id"] != bob["id"]
    assert (ada["email"], bob["email"]) == ("ada@example.com", "bob@example.com")
    assert {user.external_subject for user in await stored_users(app)} == {"sub-ada", "sub-bob"}


async def test_returning_subject_is_found_by_sub_not_email(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    created = await me(client, sign(rsa_key, KID, email="ada@example.com"))
    # The issuer now reports another address for the same subject: still the same account.
    again = await me(client, sign(rsa_key, KID, email="ada.lovelace@example.com"))
    assert again["id"] == created["id"]
    assert await user_count(app) == 1


@pytest.mark.parametrize(
    ("email_verified", "verified"),
    [(True, True), ("true", True), (False, False), ("false", False), (None, False)],
    ids=["true", "string-true", "false", "string-false", "absent"],
)
async def test_email_verified_claim_sets_email_verified_at(
    app: FastAPI,
    client: AsyncClient,
    rsa_key: rsa.RSAPrivateKey,
    email_verified: Any,
    verified: bool,
) -> None:
    before = datetime.now(UTC)
    body = await me(client, sign(rsa_key, KID, email_verified=email_verified))

    user = await stored_user(app, body["id"])
    assert (user.email_verified_at is not None) is verified
    assert (body["email_verified_at"] is not None) is verified
    if user.email_verified_at is not None:
        assert before.replace(microsecond=0) <= user.email_verified_at <= datetime.now(UTC)


async def test_email_is_stored_normalised(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    body = await me(client, sign(rsa_key, KID, email="  Ada.Lovelace@Example.COM "))
    assert body["email"] == "ada.lovelace@example.com"
    assert (await stored_user(app, body["id"])).email == "ada.lovelace@example.com"


async def test_token_without_email_gets_a_placeholder_address(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    body = await me(client, sign(rsa_key, KID, sub="No-Mail", email=None, email_verified=None))
    assert body["email"] == "no-mail@oidc.invalid"
    assert body["email_verified_at"] is None
    assert (await stored_user(app, body["id"])).external_subject == "No-Mail"


async def test_blank_email_claim_is_treated_as_no_email(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    body = await me(client, sign(rsa_key, KID, sub="blank", email="   "))
    # Not an empty address: that would be one row every blank-email subject collides with.
    assert body["email"] == "blank@oidc.invalid"
    assert (await me(client, sign(rsa_key, KID, sub="blank-2", email=" ")))["id"] != body["id"]


@pytest.mark.parametrize(
    "overrides",
    [{"sub": "s" * 256}, {"email": "a" * 320 + "@example.com"}],
    ids=["sub-over-255-chars", "email-over-320-chars"],
)
async def test_claims_too_long_to_store_are_refused_not_a_server_error(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey, overrides: dict[str, str]
) -> None:
    # OIDC Core: `sub` MUST NOT exceed 255 ASCII characters; users.external_subject is
    # VARCHAR(255) and users.email VARCHAR(320). Same answer on every database: a 401.
    response = await client.get(ME, headers=bearer(sign(rsa_key, KID, **overrides)))
    assert_invalid_token(response)
    assert await user_count(app) == 0


# --- linking to an existing local account ---------------------------------------------------------


async def test_verified_email_links_the_existing_local_account(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    local = await create_local_account(app, "ada@example.com")

    linked = await me(client, sign(rsa_key, KID, sub="idp-ada", email="Ada@Example.com"))
    again = await me(client, sign(rsa_key, KID, sub="idp-ada", email="ada@example.com"))

    assert linked["id"] == again["id"] == str(local.id)
    [user] = await stored_users(app)
    assert user.external_subject == "idp-ada"
    assert user.hashed_password == local.hashed_password  # the account is kept, not replaced


async def test_linking_on_a_verified_email_marks_the_email_verified(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    local = await create_local_account(app, "ada@example.com")
    assert local.email_verified_at is None

    linked = await me(client, sign(rsa_key, KID, sub="idp-ada", email_verified=True))

    assert linked["id"] == str(local.id)
    # The issuer vouches for this very address: email_verified true -> email_verified_at set.
    assert linked["email_verified_at"] is not None
    assert (await stored_user(app, linked["id"])).email_verified_at is not None


async def test_returning_subject_whose_email_became_verified_is_marked_verified(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    first = await me(client, sign(rsa_key, KID, email_verified=False))
    assert first["email_verified_at"] is None

    # Same subject, same address, now verified at the issuer.
    later = await me(client, sign(rsa_key, KID, email_verified=True))

    assert later["id"] == first["id"]
    assert later["email_verified_at"] is not None


@pytest.mark.parametrize("email_verified", [False, "false", None], ids=["false", "str", "absent"])
async def test_unverified_email_cannot_take_over_a_local_account(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey, email_verified: Any
) -> None:
    local = await create_local_account(app, "ada@example.com")

    response = await client.get(
        ME, headers=bearer(sign(rsa_key, KID, sub="attacker", email_verified=email_verified))
    )

    assert_invalid_token(response)
    [user] = await stored_users(app)
    assert user.id == local.id
    assert user.external_subject is None


async def test_email_of_another_subject_cannot_be_taken_over(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    owner = await me(client, sign(rsa_key, KID, sub="owner", email="ada@example.com"))

    response = await client.get(
        ME, headers=bearer(sign(rsa_key, KID, sub="intruder", email="ada@example.com"))
    )

    assert_invalid_token(response)
    [user] = await stored_users(app)
    assert (str(user.id), user.external_subject) == (owner["id"], "owner")
    assert (await me(client, sign(rsa_key, KID, sub="owner")))["id"] == owner["id"]


# --- tokens that must not get in ---------------------------------------------------------------


def tampered(key: rsa.RSAPrivateKey) -> str:
    header, _, signature = sign(key, KID).split(".")
    return f"{header}.{b64(json.dumps(claims(sub='admin')).encode())}.{signature}"


def hs256_with_public_key(key: rsa.RSAPrivateKey) -> str:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, secret=pem)


BAD_TOKENS: dict[str, Callable[[rsa.RSAPrivateKey, rsa.RSAPrivateKey], str]] = {
    "expired": lambda key, other: sign(key, KID, exp=int(time.time()) - 120),
    "wrong-aud": lambda key, other: sign(key, KID, aud="another-api"),
    "wrong-iss": lambda key, other: sign(key, KID, iss="https://evil.example.test/"),
    "no-exp": lambda key, other: sign(key, KID, exp=None),
    "no-sub": lambda key, other: sign(key, KID, sub=None),
    "future-nbf": lambda key, other: sign(key, KID, nbf=int(time.time()) + 3600),
    "tampered": lambda key, other: tampered(key),
    "other-key": lambda key, other: sign(other, KID),
    "alg-none": lambda key, other: jwt.encode(claims(), "", algorithm="none", headers={"kid": KID}),
    "hs256-public-key": lambda key, other: hs256_with_public_key(key),
    "unknown-kid": lambda key, other: sign(key, "who-knows"),
    "garbage": lambda key, other: "not-a-jwt",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_tokens_are_401_and_create_nobody(
    app: FastAPI,
    client: AsyncClient,
    rsa_key: rsa.RSAPrivateKey,
    new_rsa_key: rsa.RSAPrivateKey,
    kind: str,
) -> None:
    response = await client.get(ME, headers=bearer(BAD_TOKENS[kind](rsa_key, new_rsa_key)))

    body = assert_invalid_token(response)
    assert body["title"] == "Invalid Token"
    assert body["instance"] == ME
    assert await user_count(app) == 0


async def test_local_access_token_is_refused_in_oidc_mode(
    app: FastAPI, client: AsyncClient, settings: Settings, token: str
) -> None:
    user_id = uuid.UUID((await me(client, token))["id"])
    local = create_access_token(
        subject=user_id, session_id=uuid.uuid4(), auth=settings.auth, now=datetime.now(UTC)
    )
    assert_invalid_token(await client.get(ME, headers=bearer(local.token)))


async def test_no_credentials_is_401(app: FastAPI, client: AsyncClient, jwks: JwksServer) -> None:
    response = await client.get(ME)
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert jwks.requests == 0


async def test_deactivated_user_is_401(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    admin_token = sign(rsa_key, KID, sub="admin", email="admin@example.com")
    admin = await me(client, admin_token)
    await set_user(app, admin["id"], is_superuser=True)  # no API makes the first superuser
    ada_token = sign(rsa_key, KID, sub="ada", email="ada@example.com")
    ada = await me(client, ada_token)

    deactivated = await client.patch(
        f"/api/v1/users/{ada['id']}", json={"is_active": False}, headers=bearer(admin_token)
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False

    body = assert_invalid_token(await client.get(ME, headers=bearer(ada_token)))
    assert body["detail"] == "This account is disabled."
    assert (await me(client, admin_token))["id"] == admin["id"]
    assert await user_count(app) == 2  # no second account for the disabled subject


async def test_disabled_local_account_is_not_linked(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    local = await create_local_account(app, "ada@example.com")
    await set_user(app, str(local.id), is_active=False)

    assert_invalid_token(await client.get(ME, headers=bearer(sign(rsa_key, KID, sub="idp"))))
    assert await user_count(app) == 1


# --- local login and password endpoints are hidden -----------------------------------------------

LOCAL_ONLY: dict[str, dict[str, Any]] = {
    "/api/v1/auth/login": {"data": {"username": "ada@example.com", "password": DEFAULT_PASSWORD}},
    "/auth/login": {"data": {"username": "ada@example.com", "password": DEFAULT_PASSWORD}},
    "/api/v1/users": {"json": {"email": "new@example.com", "password": DEFAULT_PASSWORD}},
    "/api/v1/auth/refresh": {"json": {"refresh_token": "some-refresh-token"}},
    "/api/v1/auth/logout": {"json": {"refresh_token": "some-refresh-token"}},
    "/api/v1/auth/logout-all": {},
    "/api/v1/auth/password-reset": {"json": {"email": "ada@example.com"}},
    "/api/v1/auth/password-reset/confirm": {
        "json": {"token": "some-reset-token", "new_password": "a new password 123"}
    },
    "/api/v1/auth/verify-email/request": {},
    "/api/v1/auth/verify-email": {"json": {"token": "some-verification-token"}},
    "/api/v1/users/me/password": {
        "json": {"current_password": DEFAULT_PASSWORD, "new_password": "a new password 123"}
    },
}
UNKNOWN = "/api/v1/auth/no-such-route"


def comparable(response: Response) -> tuple[int, str, dict[str, Any], list[str]]:
    """What must not tell an existing route from a missing one."""
    body = response.json()
    del body["instance"], body["request_id"]
    names = sorted(set(response.headers) - {"x-request-id", "x-process-time"})
    return response.status_code, response.headers["content-type"], body, names


@pytest.mark.parametrize("path", list(LOCAL_ONLY))
async def test_local_auth_endpoints_answer_like_an_unknown_route(
    app: FastAPI, client: AsyncClient, token: str, path: str
) -> None:
    await me(client, token)  # a provisioned user, so the bearer below is valid
    users_before = await user_count(app)

    for headers in ({}, bearer(token)):
        response = await client.post(path, headers=headers, **LOCAL_ONLY[path])
        if path in STILL_READABLE:
            assert_without_post(response)
            continue
        unknown = await client.post(unknown_like(path), headers=headers, **LOCAL_ONLY[path])
        body = assert_problem(response, 404, "not_found")
        assert body["instance"] == path
        assert comparable(response) == comparable(unknown)
    assert await user_count(app) == users_before


def unknown_like(path: str) -> str:
    """A path that never existed, in the same part of the URL space (API or legacy)."""
    return UNKNOWN if path.startswith("/api/") else "/auth/no-such-route"


# GET /api/v1/users (the admin list) exists in every mode, so POST there is 405, not 404.
STILL_READABLE = {"/api/v1/users"}


def assert_without_post(response: Response) -> None:
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" not in response.headers["allow"]


@pytest.mark.parametrize(
    "path", ["/api/v1/users", "/api/v1/auth/refresh", "/api/v1/auth/password-reset"]
)
async def test_local_auth_endpoints_answer_404_even_to_a_malformed_body(
    client: AsyncClient, path: str
) -> None:
    # An unknown route never reads the body; a hidden one must not reveal itself with a 422.
    headers = {"content-type": "application/json"}
    response = await client.post(path, content=b"{not json", headers=headers)
    if path in STILL_READABLE:
        assert_without_post(response)
        return
    unknown = await client.post(unknown_like(path), content=b"{not json", headers=headers)
    assert_problem(unknown, 404, "not_found")
    assert comparable(response) == comparable(unknown)


async def test_local_auth_endpoints_still_work_in_local_mode(database_url: str) -> None:
    # The 404s above come from the mode, not from routes that are missing altogether.
    app = create_app(make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET))
    async with running(app), client_for(app) as client:
        response = await client.post(
            "/api/v1/users", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 201, response.text
        login = await client.post("/api/v1/auth/login", data=LOCAL_ONLY["/auth/login"]["data"])
        assert login.status_code == 200, login.text


# --- the JWKS: cache, rotation, outages, and the event loop ------------------------------------


async def test_unknown_kids_do_not_make_the_app_hammer_the_issuer(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, rsa_key: rsa.RSAPrivateKey, token: str
) -> None:
    await me(client, token)
    for n in range(5):
        response = await client.get(ME, headers=bearer(sign(rsa_key, f"random-{n}")))
        assert_invalid_token(response)
    assert jwks.requests == 1  # inside the refetch interval: no fetch per unknown kid


async def test_key_rotation_is_accepted_after_one_refetch(
    app: FastAPI,
    client: AsyncClient,
    jwks: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    new_rsa_key: rsa.RSAPrivateKey,
) -> None:
    clock = use_fake_clock(app, jwks)
    before = await me(client, sign(rsa_key, KID))
    assert jwks.requests == 1

    # The issuer switches to a new key under a new kid; our cache is still fresh.
    jwks.publish(public_jwk(new_rsa_key, NEW_KID, alg="RS256", use="sig"))
    clock.advance(MIN_REFETCH + 1)
    after = await me(client, sign(new_rsa_key, NEW_KID))

    assert after["id"] == before["id"]  # same subject, same user, whatever key signed
    assert jwks.requests == 2  # exactly one refetch
    assert await me(client, sign(new_rsa_key, NEW_KID)) == after
    assert jwks.requests == 2
    # The retired key is gone from the refetched set.
    assert_invalid_token(await client.get(ME, headers=bearer(sign(rsa_key, KID))))
    assert jwks.requests == 2


async def test_keys_are_refetched_when_the_cache_expires(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    clock = use_fake_clock(app, jwks)
    await me(client, token)
    clock.advance(CACHE_SECONDS - 1)
    await me(client, token)
    assert jwks.requests == 1
    clock.advance(1)
    await me(client, token)
    assert jwks.requests == 2


async def test_cached_keys_survive_an_issuer_outage(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    clock = use_fake_clock(app, jwks)
    created = await me(client, token)
    jwks.status = 500
    clock.advance(CACHE_SECONDS + 1)

    assert (await me(client, token))["id"] == created["id"]
    assert jwks.requests == 2


@pytest.mark.parametrize("failure", ["http-500", "not-json", "not-a-jwks"])
async def test_issuer_down_before_any_key_was_cached_is_503(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str, failure: str
) -> None:
    if failure == "http-500":
        jwks.status = 500
    else:
        jwks.raw_body = b"{not json" if failure == "not-json" else b'{"keys": "none"}'

    response = await client.get(ME, headers=bearer(token))

    body = assert_problem(response, 503, "service_unavailable")
    assert body["title"] == "Service Unavailable"
    assert body["detail"] == KEYS_UNAVAILABLE
    assert "www-authenticate" not in response.headers  # the token is not to blame
    assert jwks.requests == 1
    assert await user_count(app) == 0


async def test_unreachable_issuer_is_503(database_url: str, token: str) -> None:
    closed = JwksServer()  # bind a port, then free it, so nothing listens there
    url = closed.url
    closed.server_close()
    app = create_app(oidc_settings(database_url, url))
    async with running(app), client_for(app) as client:
        response = await client.get(ME, headers=bearer(token))
        assert_problem(response, 503, "service_unavailable")
        assert await user_count(app) == 0


async def test_hanging_issuer_is_503_after_oidc_http_timeout(
    database_url: str, jwks: JwksServer, token: str
) -> None:
    jwks.delay = 10.0
    app = create_app(oidc_settings(database_url, jwks.url, OIDC_HTTP_TIMEOUT=0.3))
    async with running(app), client_for(app) as client:
        started = time.monotonic()
        response = await client.get(ME, headers=bearer(token))
        elapsed = time.monotonic() - started

    assert_problem(response, 503, "service_unavailable")
    assert elapsed < 3.0
    assert jwks.requests == 1


async def test_fetching_the_keys_does_not_block_the_event_loop(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    jwks.delay = 0.5
    finished: list[str] = []
    responses: dict[str, Response] = {}

    async def call(name: str, path: str, headers: dict[str, str]) -> None:
        responses[name] = await client.get(path, headers=headers)
        finished.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(call, "me", ME, bearer(token))
        # Wait (in a thread) until the issuer holds the app's fetch open.
        assert await anyio.to_thread.run_sync(jwks.received.wait, 5.0)
        await call("health", "/health", {})

    assert finished == ["health", "me"]
    assert responses["health"].status_code == 200
    assert responses["me"].status_code == 200, responses["me"].text
    assert responses["me"].json()["email"] == "ada@example.com"
