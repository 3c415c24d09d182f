"""The OIDC verifier (app/infra/oidc.py): tokens it accepts, and how it is built.

Against a JWKS served over real HTTP on loopback (fixtures in conftest.py).
"""

import time
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.core.security import InvalidTokenError
from app.infra.oidc import OidcIdentity, OidcVerifier
from tests.harness import make_settings
from tests.jwks import AUDIENCE, ISSUER, JwksServer, VerifierFactory, sign

pytestmark = pytest.mark.anyio


# --- valid tokens -------------------------------------------------------------------------------


async def test_valid_rs256_token_returns_the_identity(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    identity = await verifier.verify(sign(rsa_key, "rsa-1"))
    assert identity == OidcIdentity(
        subject="user-123",
        email="ada@example.com",
        email_verified=True,
        authenticated_at=identity.authenticated_at,
    )
    # When the person signed in at the issuer: `auth_time`, else the token's `iat`.
    assert identity.authenticated_at is not None
    assert abs((datetime.now(UTC) - identity.authenticated_at).total_seconds()) < 60
    assert server.requests == 1


async def test_keys_are_cached_between_verifications(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    for _ in range(3):
        await verifier.verify(sign(rsa_key, "rsa-1"))
    assert server.requests == 1


async def test_valid_es256_token_verifies(
    verifier: OidcVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    identity = await verifier.verify(sign(ec_key, "ec-1", "ES256", sub="ec-user"))
    assert identity.subject == "ec-user"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS512"])
async def test_rsa_key_without_declared_alg_accepts_other_rsa_algorithms(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    assert (await verifier.verify(sign(rsa_key, "rsa-1", alg))).subject == "user-123"


@pytest.mark.parametrize(
    ("extra", "email", "verified"),
    [
        ({"email": None, "email_verified": None}, None, False),
        ({"email_verified": False}, "ada@example.com", False),
        ({"email_verified": "false"}, "ada@example.com", False),
        ({"email_verified": "true"}, "ada@example.com", True),
        ({"email": " ada@example.com "}, "ada@example.com", True),
        ({"email": "  "}, None, True),
    ],
)
async def test_email_claims_map_to_the_identity(
    verifier: OidcVerifier,
    rsa_key: rsa.RSAPrivateKey,
    extra: dict[str, Any],
    email: str | None,
    verified: bool,
) -> None:
    identity = await verifier.verify(sign(rsa_key, "rsa-1", **extra))
    assert (identity.email, identity.email_verified) == (email, verified)


async def test_audience_list_containing_ours_verifies(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = sign(rsa_key, "rsa-1", aud=["another-api", AUDIENCE])
    assert (await verifier.verify(token)).subject == "user-123"


async def test_expiry_within_leeway_still_verifies(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = sign(rsa_key, "rsa-1", exp=int(time.time()) - 5)
    assert (await verifier.verify(token)).subject == "user-123"


# --- construction --------------------------------------------------------------------------------


async def test_from_settings_uses_the_oidc_settings(
    server: JwksServer, http: httpx2.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    settings = make_settings(
        OIDC_ISSUER=ISSUER,
        OIDC_AUDIENCE=AUDIENCE,
        OIDC_JWKS_URL=server.url,
        OIDC_JWKS_CACHE_SECONDS=60,
        OIDC_HTTP_TIMEOUT=1.5,
    )
    verifier = OidcVerifier.from_settings(settings.oidc, http)
    assert (verifier.issuer, verifier.audience, verifier.jwks_url) == (
        ISSUER,
        AUDIENCE,
        server.url,
    )
    assert (await verifier.verify(sign(rsa_key, "rsa-1"))).subject == "user-123"
    assert server.requests == 1


@pytest.mark.parametrize("missing", ["OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"])
async def test_from_settings_requires_the_oidc_settings(
    http: httpx2.AsyncClient, missing: str
) -> None:
    values = {"OIDC_ISSUER": ISSUER, "OIDC_AUDIENCE": AUDIENCE, "OIDC_JWKS_URL": "http://x/"}
    del values[missing]
    with pytest.raises(ValueError, match="OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL"):
        OidcVerifier.from_settings(make_settings(**values).oidc, http)


@pytest.mark.parametrize(
    "overrides",
    [{"cache_seconds": -1}, {"timeout": 0}, {"min_refetch_interval": -1}],
)
async def test_invalid_options_raise_at_construction(
    make_verifier: VerifierFactory, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="must be"):
        make_verifier(**overrides)


@pytest.mark.parametrize("email", [42, "not an address", "ada@", "ada\u0000@example.com"])
async def test_an_email_claim_that_is_not_an_address_is_refused(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, email: object
) -> None:
    with pytest.raises(InvalidTokenError, match="not an address"):
        await verifier.verify(sign(rsa_key, "rsa-1", email=email))


async def test_auth_time_is_when_the_person_signed_in(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    identity = await verifier.verify(sign(rsa_key, "rsa-1", auth_time=1_700_000_000))
    assert identity.authenticated_at == datetime.fromtimestamp(1_700_000_000, UTC)
