"""OIDC bearer token verification against a JWKS served over real HTTP on loopback."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.core.errors import ServiceUnavailableError
from app.core.security import InvalidTokenError
from app.infra.oidc import OidcIdentity, OidcVerifier
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
from tests.harness import log_lines, make_settings

pytestmark = pytest.mark.anyio

CACHE_SECONDS = 300.0
MIN_REFETCH = 10.0
FETCH_FAILED = "oidc_jwks_fetch_failed"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def server(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[JwksServer]:
    httpd = JwksServer()
    # rsa-1 declares no alg, so any RSA signature algorithm may use it.
    httpd.publish(public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1", alg="ES256"))
    with serving(httpd):
        yield httpd


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


VerifierFactory = Callable[..., OidcVerifier]


@pytest.fixture
def make_verifier(
    server: JwksServer, http: httpx2.AsyncClient, clock: FakeClock
) -> VerifierFactory:
    def make(**overrides: Any) -> OidcVerifier:
        options: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": server.url,
            "cache_seconds": CACHE_SECONDS,
            "http": http,
            "timeout": 2.0,
            "clock": clock,
            "min_refetch_interval": MIN_REFETCH,
        }
        options.update(overrides)
        return OidcVerifier(**options)

    return make


@pytest.fixture
def verifier(make_verifier: VerifierFactory) -> OidcVerifier:
    return make_verifier()


# --- valid tokens -------------------------------------------------------------------------------


async def test_valid_rs256_token_returns_the_identity(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    identity = await verifier.verify(sign(rsa_key, "rsa-1"))
    assert identity == OidcIdentity(
        subject="user-123", email="ada@example.com", email_verified=True
    )
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
        ({"email": 42}, None, True),
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


# --- key rotation, unknown kids and the cache ---------------------------------------------------


async def test_rotated_key_verifies_after_exactly_one_refetch(
    verifier: OidcVerifier,
    server: JwksServer,
    clock: FakeClock,
    rsa_key: rsa.RSAPrivateKey,
    new_rsa_key: rsa.RSAPrivateKey,
) -> None:
    await verifier.verify(sign(rsa_key, "rsa-1"))
    server.publish(public_jwk(new_rsa_key, "rsa-2", alg="RS256", use="sig"))
    clock.advance(MIN_REFETCH + 1)  # well inside the cache TTL

    identity = await verifier.verify(sign(new_rsa_key, "rsa-2", sub="rotated"))

    assert identity.subject == "rotated"
    assert server.requests == 2
    # The refetched set replaced the old one: the retired key no longer verifies.
    with pytest.raises(InvalidTokenError):
        await verifier.verify(sign(rsa_key, "rsa-1"))
    assert server.requests == 2


async def test_unknown_kid_fails_after_one_refetch_and_is_throttled(
    verifier: OidcVerifier, server: JwksServer, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    await verifier.verify(sign(rsa_key, "rsa-1"))
    clock.advance(MIN_REFETCH + 1)

    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(sign(rsa_key, "nope-1"))
    assert server.requests == 2

    clock.advance(MIN_REFETCH - 1)
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(sign(rsa_key, "nope-2"))
    assert server.requests == 2

    clock.advance(2)
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(sign(rsa_key, "nope-3"))
    assert server.requests == 3


async def test_unknown_kid_on_first_use_fetches_once(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(sign(rsa_key, "nope"))
    assert server.requests == 1


async def test_cache_ttl_expiry_causes_a_refetch(
    verifier: OidcVerifier, server: JwksServer, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    await verifier.verify(sign(rsa_key, "rsa-1"))
    clock.advance(CACHE_SECONDS - 1)
    await verifier.verify(sign(rsa_key, "rsa-1"))
    assert server.requests == 1

    clock.advance(1)
    await verifier.verify(sign(rsa_key, "rsa-1"))
    assert server.requests == 2


async def test_concurrent_verifications_share_one_fetch(
    verifier: OidcVerifier, server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    server.delay = 0.2  # keeps the first fetch in flight while the others arrive
    token = sign(rsa_key, "rsa-1")

    identities = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))

    assert {identity.subject for identity in identities} == {"user-123"}
    assert server.requests == 1


async def test_unusable_keys_are_skipped_not_fatal(
    verifier: OidcVerifier,
    server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    new_rsa_key: rsa.RSAPrivateKey,
) -> None:
    server.publish(
        {"kty": "oct", "kid": "sym", "k": b64(b"x" * 32)},
        public_jwk(new_rsa_key, "enc-1", use="enc"),
        {"kty": "XYZ", "kid": "odd"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        public_jwk(new_rsa_key, "no-kid") | {"kid": 7},
        "not-a-key",
        public_jwk(rsa_key, "rsa-1"),
    )
    assert (await verifier.verify(sign(rsa_key, "rsa-1"))).subject == "user-123"
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(sign(new_rsa_key, "enc-1"))


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


# --- the identity provider is down ---------------------------------------------------------------


def break_server(server: JwksServer, failure: str) -> None:
    if failure == "http-500":
        server.status = 500
    elif failure == "invalid-json":
        server.raw_body = b"{not json"
    elif failure == "not-a-jwks":
        server.raw_body = b'["keys"]'
    elif failure == "timeout":
        server.delay = 5.0


FAILURES = ["http-500", "invalid-json", "not-a-jwks", "timeout"]


@pytest.mark.parametrize("failure", FAILURES)
async def test_no_keys_and_endpoint_down_is_service_unavailable(
    make_verifier: VerifierFactory, server: JwksServer, rsa_key: rsa.RSAPrivateKey, failure: str
) -> None:
    break_server(server, failure)
    verifier = make_verifier(timeout=0.2)
    with log_lines() as logs, pytest.raises(ServiceUnavailableError) as raised:
        await verifier.verify(sign(rsa_key, "rsa-1"))
    assert raised.value.detail == "The identity provider's keys could not be fetched."
    assert raised.value.status_code == 503
    assert server.requests == 1
    assert len(logs.events(FETCH_FAILED)) == 1


async def test_unreachable_endpoint_is_service_unavailable(
    make_verifier: VerifierFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    closed = JwksServer()  # bind a port, then free it, so nothing listens there
    url = closed.url
    closed.server_close()
    verifier = make_verifier(jwks_url=url)
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(sign(rsa_key, "rsa-1"))


async def test_failed_fetch_is_retried_only_after_the_interval(
    verifier: OidcVerifier, server: JwksServer, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    server.status = 500
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(sign(rsa_key, "rsa-1"))
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(sign(rsa_key, "rsa-1"))
    assert server.requests == 1

    server.status = 200
    clock.advance(MIN_REFETCH)
    assert (await verifier.verify(sign(rsa_key, "rsa-1"))).subject == "user-123"
    assert server.requests == 2


@pytest.mark.parametrize("failure", FAILURES)
async def test_endpoint_down_after_caching_keeps_using_cached_keys(
    make_verifier: VerifierFactory,
    server: JwksServer,
    clock: FakeClock,
    rsa_key: rsa.RSAPrivateKey,
    failure: str,
) -> None:
    verifier = make_verifier(timeout=0.2)
    await verifier.verify(sign(rsa_key, "rsa-1"))
    break_server(server, failure)
    clock.advance(CACHE_SECONDS + 1)

    with log_lines() as logs:
        identity = await verifier.verify(sign(rsa_key, "rsa-1"))
        await verifier.verify(sign(rsa_key, "rsa-1"))  # inside the retry interval: no fetch

    assert identity.subject == "user-123"
    assert server.requests == 2
    [warning] = logs.events(FETCH_FAILED)
    assert warning["level"] == "warning"
    assert warning["url"] == server.url


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
