"""OIDC mode through the real app: a valid token's subject becomes (or finds) a local user.

First sight creates the account; a verified email links an existing local one, an unverified
email or another subject's address never takes one over. On SQLite and PostgreSQL; the
database is read directly to see what was stored, and changed directly only for a state the
API cannot reach in this mode (a local account).
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.auth.oidc.helpers import (
    LEGACY_ME,
    ME,
    assert_invalid_token,
    create_local_account,
    me,
    stored_user,
    stored_users,
    user_count,
)
from tests.harness import assert_problem
from tests.identity import bearer
from tests.jwks import KID, JwksServer, sign

pytestmark = pytest.mark.anyio


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
    local = await create_local_account(app, "ada@example.com", verified=True)

    linked = await me(client, sign(rsa_key, KID, sub="idp-ada", email="Ada@Example.com"))
    again = await me(client, sign(rsa_key, KID, sub="idp-ada", email="ada@example.com"))

    assert linked["id"] == again["id"] == str(local.id)
    [user] = await stored_users(app)
    assert user.external_subject == "idp-ada"
    assert user.hashed_password == local.hashed_password  # the account is kept, not replaced


async def test_a_local_account_that_never_confirmed_its_email_is_not_linked(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The issuer vouches for the address, but whoever registered it locally never proved it:
    # it may be an intruder who registered the victim's address first.
    local = await create_local_account(app, "ada@example.com")
    assert local.email_verified_at is None

    response = await client.get(
        ME, headers=bearer(sign(rsa_key, KID, sub="idp-ada", email_verified=True))
    )

    assert_problem(response, 409, "account_link_refused")
    [user] = await stored_users(app)
    assert user.external_subject is None


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
    local = await create_local_account(app, "ada@example.com", verified=True)

    response = await client.get(
        ME, headers=bearer(sign(rsa_key, KID, sub="attacker", email_verified=email_verified))
    )

    assert_problem(response, 409, "account_link_refused")
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
