"""AUTH_PROVIDER=oidc: an issuer's keys, its JWKS on loopback, and settings that trust it.

Conftest's `app` and `client` are built from the `settings` here, so every test in this
package runs the app in OIDC mode.
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.config import Settings
from tests.auth.oidc.helpers import oidc_settings
from tests.jwks import KID, JwksServer, sign


@pytest.fixture
def settings(database_url: str, jwks: JwksServer) -> Settings:
    """OIDC mode against the loopback issuer; conftest's `app` and `client` are built from it."""
    return oidc_settings(database_url, jwks.url)


@pytest.fixture
def token(rsa_key: rsa.RSAPrivateKey) -> str:
    """A valid token for subject user-123 (ada@example.com, verified)."""
    return sign(rsa_key, KID)
