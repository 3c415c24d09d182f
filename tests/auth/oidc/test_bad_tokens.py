"""OIDC mode through the real app: the tokens that must not get in, and disabled accounts."""

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.core.security import create_access_token
from tests.auth.oidc.helpers import (
    ME,
    assert_invalid_token,
    create_local_account,
    me,
    set_user,
    user_count,
)
from tests.harness import assert_problem
from tests.identity import bearer
from tests.jwks import KID, JwksServer, b64, claims, hand_made, sign

pytestmark = pytest.mark.anyio


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
    local = await create_local_account(app, "ada@example.com", verified=True)
    await set_user(app, str(local.id), is_active=False)

    assert_invalid_token(await client.get(ME, headers=bearer(sign(rsa_key, KID, sub="idp"))))
    assert await user_count(app) == 1
