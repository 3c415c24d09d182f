"""The OIDC verifier's fixtures: keys, a JWKS served over real HTTP on loopback, a clock."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.infra.oidc import OidcVerifier
from tests.harness import FakeClock
from tests.jwks import (
    AUDIENCE,
    CACHE_SECONDS,
    ISSUER,
    MIN_REFETCH,
    JwksServer,
    VerifierFactory,
    public_jwk,
    serving,
)


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
