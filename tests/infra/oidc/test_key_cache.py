"""The OIDC verifier's keys: rotation, unknown kids, the cache, and an identity provider
that is down.
"""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.errors import AppError, ExternalServiceError, ServiceUnavailableError
from app.core.security import InvalidTokenError
from app.infra.oidc import OidcVerifier
from tests.harness import FakeClock, log_lines
from tests.jwks import (
    CACHE_SECONDS,
    MIN_REFETCH,
    JwksServer,
    VerifierFactory,
    b64,
    public_jwk,
    sign,
)

pytestmark = pytest.mark.anyio

FETCH_FAILED = "oidc_jwks_fetch_failed"


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
# A bad answer is the issuer's fault (502); no answer in time is 504.
EXPECTED = {"http-500": 502, "invalid-json": 502, "not-a-jwks": 502, "timeout": 504}


@pytest.mark.parametrize("failure", FAILURES)
async def test_no_keys_and_endpoint_down_is_an_upstream_problem(
    make_verifier: VerifierFactory, server: JwksServer, rsa_key: rsa.RSAPrivateKey, failure: str
) -> None:
    break_server(server, failure)
    verifier = make_verifier(timeout=0.2)
    with log_lines() as logs, pytest.raises(AppError) as raised:
        await verifier.verify(sign(rsa_key, "rsa-1"))
    assert raised.value.detail == "The identity provider's keys could not be fetched."
    assert raised.value.status_code == EXPECTED[failure]
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
    with pytest.raises(ExternalServiceError):
        await verifier.verify(sign(rsa_key, "rsa-1"))
    with pytest.raises(ExternalServiceError):
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
