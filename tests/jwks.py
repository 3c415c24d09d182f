"""An OIDC issuer for tests: RSA/EC keys made in the test, a JWKS served over real HTTP on loopback.

Shared by the verifier's unit tests (tests/infra/oidc/) and the app's tests in OIDC mode
(tests/auth/oidc/).
"""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.infra.oidc import OidcVerifier
from tests.quiet_http import QuietHTTPServer

ISSUER = "https://issuer.example.test/"
AUDIENCE = "production-fastapi-backend"
CACHE_SECONDS = 300
# OidcVerifier's default pause between two fetches of the JWKS.
MIN_REFETCH = 10.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
VerifierFactory = Callable[..., OidcVerifier]


def rsa_private_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (slow enough that fixtures make one per module)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer(QuietHTTPServer):
    """Serves a mutable JWKS document (or a failure) and counts the requests it answers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), JwksHandler)
        self.document: Any = {"keys": []}
        self.status = 200
        self.raw_body: bytes | None = None
        self.delay = 0.0
        self.release = threading.Event()  # ends pending delays at teardown
        self.requests = 0
        self.request_ids: list[str | None] = []  # the X-Request-ID of each request
        self.received = threading.Event()  # set once a request has arrived
        self.counter_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/.well-known/jwks.json"

    def publish(self, *keys: Any) -> None:
        self.document = {"keys": list(keys)}


class JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state = self.server
        assert isinstance(state, JwksServer)
        with state.counter_lock:
            state.requests += 1
            state.request_ids.append(self.headers.get("X-Request-ID"))
        state.received.set()
        if state.delay:
            state.release.wait(state.delay)
        body = state.raw_body or json.dumps(state.document).encode()
        try:
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


_Server = TypeVar("_Server", bound=ThreadingHTTPServer)


@contextmanager
def serving(httpd: _Server) -> Iterator[_Server]:
    """Serve `httpd` from a thread; on exit end pending delays, stop it and free its port."""
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        release: threading.Event | None = getattr(httpd, "release", None)
        if release is not None:
            release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def public_jwk(key: PrivateKey, kid: str, **extra: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, **extra}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "iat": now,
        "exp": now + 300,
        "email": "ada@example.com",
        "email_verified": True,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def sign(key: PrivateKey, kid: str | None, alg: str = "RS256", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], signature: bytes = b"", secret: bytes | None = None) -> str:
    """Build a token the way an attacker would, without PyJWT's guards."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# Fixtures (tests/conftest.py loads this module as a plugin): an issuer's keys and its JWKS.
KID = "rsa-1"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """The issuer's signing key."""
    return rsa_private_key()


@pytest.fixture(scope="module")
def new_rsa_key() -> rsa.RSAPrivateKey:
    """The key the issuer rotates to."""
    return rsa_private_key()


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    """The issuer's JWKS endpoint on loopback, publishing `rsa_key` as KID."""
    httpd = JwksServer()
    httpd.publish(public_jwk(rsa_key, KID, alg="RS256", use="sig"))
    with serving(httpd):
        yield httpd
