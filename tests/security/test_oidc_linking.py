"""Attack: pre-register a victim's address locally and inherit their sign-in through the issuer."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.api_keys import service as api_keys_service
from app.core.config import Settings
from app.db.base import utcnow
from app.deps import resources_of
from tests.auth.oidc.helpers import create_local_account, me, oidc_settings, stored_users
from tests.harness import assert_problem, log_lines
from tests.identity import bearer
from tests.jwks import KID, JwksServer, sign

pytestmark = pytest.mark.anyio

VICTIM = "victim@example.com"


@pytest.fixture
def settings(database_url: str, jwks: JwksServer) -> Settings:
    return oidc_settings(database_url, jwks.url)


async def intruders_key(app: FastAPI) -> str:
    """The intruder registered the victim's address (while local sign-up was open) and a key."""
    user = await create_local_account(app, VICTIM)
    async with resources_of(app).session_factory() as session:
        _, key = await api_keys_service.create(
            session=session,
            user=user,
            name="intruder",
            scopes=["users:read"],
            expires_at=None,
            now=utcnow(),
            default_ttl=timedelta(days=1),
            max_ttl=timedelta(days=2),
        )
        await session.commit()
    return key


async def test_an_unconfirmed_local_account_does_not_inherit_the_issuers_sign_in(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    key = await intruders_key(app)
    with log_lines() as logs:
        response = await client.get(
            "/api/v1/users/me",
            headers=bearer(sign(rsa_key, KID, sub="victim-at-idp", email=VICTIM)),
        )
    assert_problem(response, 409, "account_link_refused")
    [refused] = logs.events("oidc_link_refused")
    assert refused["level"] == "warning"
    [intruder] = await stored_users(app)
    assert intruder.external_subject is None  # the key still acts for the intruder alone
    mine = await client.get("/api/v1/users/me", headers={"X-API-Key": key})
    assert mine.json()["email_verified_at"] is None


async def test_a_confirmed_local_account_is_linked(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    local = await create_local_account(app, VICTIM, verified=True)
    linked = await me(client, sign(rsa_key, KID, sub="victim-at-idp", email=VICTIM))
    assert linked["id"] == str(local.id)


@pytest.mark.parametrize(
    "claimed",
    ["JOSE\u0301@MU\u0308LLER.COM", "jos\u00e9@\uff4d\u00fc\uff4c\uff4c\uff45\uff52.com"],
    ids=["nfd-upper-case", "fullwidth-domain"],
)
async def test_an_issuers_other_spelling_of_the_address_is_the_same_account(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey, claimed: str
) -> None:
    # Normalised like every address the API receives: linked, not a second account for it.
    local = await create_local_account(app, "jos\u00e9@m\u00fcller.com", verified=True)
    linked = await me(client, sign(rsa_key, KID, sub="jose-at-idp", email=claimed))
    assert linked["id"] == str(local.id)
    assert len(await stored_users(app)) == 1


async def test_the_issuer_owns_the_email(
    app: FastAPI, client: AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    headers = bearer(sign(rsa_key, KID, sub="owner", email="owner@example.com"))
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    patched = await client.patch("/api/v1/users/me", json={"email": VICTIM}, headers=headers)
    assert_problem(patched, 422, "validation_error")
    changed = await client.post("/api/v1/users/me/email", json={"email": VICTIM}, headers=headers)
    assert changed.status_code in (404, 405)  # not mounted with an external issuer
    assert (await client.get("/api/v1/users/me", headers=headers)).json()["email"] == (
        "owner@example.com"
    )


@pytest.mark.parametrize("email", ["not an address", "victim@", "a b@example.com"])
async def test_an_email_claim_must_be_an_address(
    client: AsyncClient, rsa_key: rsa.RSAPrivateKey, email: str
) -> None:
    response = await client.get(
        "/api/v1/users/me", headers=bearer(sign(rsa_key, KID, sub="odd", email=email))
    )
    assert_problem(response, 401, "invalid_token")
