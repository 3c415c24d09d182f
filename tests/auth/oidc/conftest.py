"""AUTH_PROVIDER=oidc: an issuer's keys, its JWKS on loopback, and settings that trust it.

Conftest's `app` and `client` are built from the `settings` here, so every test in this
package runs the app in OIDC mode.
"""

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.config import Settings
from tests.auth.oidc.helpers import KID, oidc_settings
from tests.jwks import JwksServer, public_jwk, rsa_private_key, serving, sign


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa_private_key()


@pytest.fixture(scope="module")
def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa_private_key()


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    """The issuer's JWKS endpoint, publishing `rsa_key` as KID."""
    httpd = JwksServer()
    httpd.publish(public_jwk(rsa_key, KID, alg="RS256", use="sig"))
    with serving(httpd):
        yield httpd


@pytest.fixture
def settings(database_url: str, jwks: JwksServer) -> Settings:
    """OIDC mode against the loopback issuer; conftest's `app` and `client` are built from it."""
    return oidc_settings(database_url, jwks.url)


@pytest.fixture
def token(rsa_key: rsa.RSAPrivateKey) -> str:
    """A valid token for subject user-123 (ada@example.com, verified)."""
    return sign(rsa_key, KID)
