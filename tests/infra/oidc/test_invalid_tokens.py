"""The OIDC verifier refuses bad tokens: wrong claims, forged signatures, confused algorithms,
malformed tokens (most without fetching the keys at all).
"""

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.core.security import InvalidTokenError
from app.infra.oidc import OidcVerifier
from tests.jwks import JwksServer, b64, claims, hand_made, public_jwk, sign

pytestmark = pytest.mark.anyio


# --- invalid tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "someone-else"}, "(?i)audience"),
        ({"iss": "https://evil.example.test/"}, "issuer"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"aud": None}, "aud"),
        ({"iss": None}, "iss"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "no-sub", "no-exp", "no-aud", "no-iss", "future-nbf"],
)
async def test_invalid_claims_are_rejected(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTokenError, match=message):
        await verifier.verify(sign(rsa_key, "rsa-1", **overrides))


async def test_empty_subject_is_rejected(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(InvalidTokenError, match="subject"):
        await verifier.verify(sign(rsa_key, "rsa-1", sub=""))


async def test_tampered_payload_is_rejected(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    header, _, signature = sign(rsa_key, "rsa-1").split(".")
    forged_payload = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(InvalidTokenError, match="Signature verification failed"):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")


async def test_token_signed_by_another_key_is_rejected(
    verifier: OidcVerifier, new_rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(InvalidTokenError, match="Signature verification failed"):
        await verifier.verify(sign(new_rsa_key, "rsa-1"))


async def test_alg_none_is_rejected_without_fetching(
    verifier: OidcVerifier, server: JwksServer
) -> None:
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": "rsa-1"})
    with pytest.raises(InvalidTokenError, match="algorithm not allowed"):
        await verifier.verify(token)
    assert server.requests == 0


async def test_hs256_signed_with_the_public_key_pem_is_rejected(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, secret=pem)
    with pytest.raises(InvalidTokenError, match="algorithm not allowed"):
        await verifier.verify(token)
    assert server.requests == 0


async def test_alg_must_match_the_key_declared_alg(
    verifier: OidcVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    # ec-1 declares ES256; an ES384 signature must not be accepted for it.
    with pytest.raises(InvalidTokenError, match="does not match its key"):
        await verifier.verify(sign(ec.generate_private_key(ec.SECP384R1()), "ec-1", "ES384"))
    assert (await verifier.verify(sign(ec_key, "ec-1", "ES256"))).subject == "user-123"


async def test_rsa_alg_with_an_ec_key_is_rejected(
    verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(InvalidTokenError, match="does not match its key"):
        await verifier.verify(sign(rsa_key, "ec-1", "RS256"))


async def test_rotated_key_declaring_rs256_rejects_ps256(
    verifier: OidcVerifier, server: JwksServer, new_rsa_key: rsa.RSAPrivateKey
) -> None:
    server.publish(public_jwk(new_rsa_key, "rsa-2", alg="RS256"))
    with pytest.raises(InvalidTokenError, match="does not match its key"):
        await verifier.verify(sign(new_rsa_key, "rsa-2", "PS256"))


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "",
        hand_made({"alg": ["RS256"], "kid": "rsa-1"}, signature=b"sig"),
        hand_made({"alg": "RS256"}, signature=b"sig"),
        hand_made({"kid": "rsa-1"}, signature=b"sig"),
    ],
    ids=["garbage", "empty", "alg-not-a-string", "no-kid", "no-alg"],
)
async def test_malformed_tokens_are_rejected_without_fetching(
    verifier: OidcVerifier, server: JwksServer, token: str
) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)
    assert server.requests == 0
