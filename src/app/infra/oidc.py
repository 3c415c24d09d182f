"""Verification of bearer tokens from an external OpenID Connect issuer against its JWKS."""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import email_validator
import httpx2
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from app.core.deadline import upstream_call
from app.core.errors import ExternalServiceError
from app.core.security import InvalidTokenError
from app.core.settings_groups import OidcSettings
from app.core.upstream import upstream_problem

log = structlog.get_logger(__name__)

# Asymmetric only: accepting HS* would let a token be "signed" with the public key as secret.
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_ALLOWED_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_CURVE_ALGORITHMS.values())
# Tolerates small clock differences between the issuer and us.
_LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
_KEYS_UNAVAILABLE = "The identity provider's keys could not be fetched."

_PublicKey = RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who a verified external token says the caller is, and when they signed in there."""

    subject: str
    email: str | None
    email_verified: bool
    authenticated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Key:
    key: _PublicKey
    algorithms: frozenset[str]


def _is_address(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


def _moment(value: object) -> datetime | None:
    """A NumericDate claim (`auth_time`, `iat`) as a time, or None when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """Return the algorithms a JWK may verify; empty when we must not use it."""
    if jwk.get("use", "sig") != "sig":
        return frozenset()
    if jwk.get("kty") == "RSA":
        usable = _RSA_ALGORITHMS
    elif jwk.get("kty") == "EC" and jwk.get("crv") in _CURVE_ALGORITHMS:
        usable = frozenset({_CURVE_ALGORITHMS[jwk["crv"]]})
    else:
        return frozenset()
    declared = jwk.get("alg")
    return usable if declared is None else usable & {declared}


def _parse_key(jwk: Any) -> tuple[str, _Key] | None:
    """Return (kid, key) for a usable signing key, or None so one odd key spares the rest."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        return None
    algorithms = _key_algorithms(jwk)
    if not algorithms:
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=min(algorithms)).key
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    # A JWKS that leaks a private key is broken; do not sign-check with it either.
    if not isinstance(key, _PublicKey):
        return None
    return jwk["kid"], _Key(key=key, algorithms=algorithms)


def _parse_jwks(document: Any) -> dict[str, _Key]:
    """Return the usable keys of a JWKS document by kid; raise ValueError if it is no JWKS."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    parsed = (_parse_key(jwk) for jwk in document["keys"])
    return dict(item for item in parsed if item is not None)


class OidcVerifier:
    """Verifies an issuer's bearer tokens with its JWKS, fetched asynchronously and cached."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        cache_seconds: float,
        http: httpx2.AsyncClient,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        min_refetch_interval: float = 10.0,
    ) -> None:
        if cache_seconds < 0 or timeout <= 0 or min_refetch_interval < 0:
            raise ValueError("cache_seconds and min_refetch_interval must be >= 0, timeout > 0")
        self.issuer, self.audience, self.jwks_url = issuer, audience, jwks_url
        self._cache_seconds = cache_seconds
        self._http = http
        self._timeout = timeout
        self._clock = clock
        self._min_refetch_interval = min_refetch_interval
        self._keys: dict[str, _Key] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._failure: httpx2.HTTPError | TimeoutError | ValueError | None = None  # the last one's
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: OidcSettings, http: httpx2.AsyncClient) -> Self:
        """Build a verifier from the OIDC settings; raise ValueError if any is missing."""
        if not (settings.issuer and settings.audience and settings.jwks_url):
            raise ValueError("OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL are required")
        return cls(
            issuer=settings.issuer,
            audience=settings.audience,
            jwks_url=settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            http=http,
            timeout=settings.http_timeout,
        )

    async def verify(self, token: str) -> OidcIdentity:
        """Return the identity in a valid token, or raise `InvalidTokenError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in _ALLOWED_ALGORITHMS:
            raise InvalidTokenError("token algorithm not allowed")
        if not isinstance(kid, str):
            raise InvalidTokenError("token has no key id")
        key = await self._key_for(kid)
        if alg not in key.algorithms:
            raise InvalidTokenError("token algorithm does not match its key")
        return self._identity(self._decode(token, key.key, alg))

    def _decode(self, token: str, key: _PublicKey, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],  # pinned to the header alg already checked against the key
                audience=self.audience,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        return claims

    @staticmethod
    def _identity(claims: Mapping[str, Any]) -> OidcIdentity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("token has no subject")
        email = claims.get("email")
        if isinstance(email, str):
            email = email.strip() or None  # issuers that send a blank email send none
        if email is not None and not _is_address(email):
            raise InvalidTokenError("token's email is not an address")
        # Some issuers send the string "true"; bool("false") would wrongly be True.
        verified = claims.get("email_verified")
        return OidcIdentity(
            subject=subject,
            email=email,
            email_verified=verified is True or verified == "true",
            authenticated_at=_moment(claims.get("auth_time", claims.get("iat"))),
        )

    async def _key_for(self, kid: str) -> _Key:
        if self._needs_fetch(kid):
            async with self._lock:
                # Another task may have fetched while this one waited for the lock.
                if self._needs_fetch(kid):
                    await self._fetch()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise self._unavailable()
        raise InvalidTokenError("unknown key id")

    def _unavailable(self) -> Exception:
        """The problem to answer while no key was ever fetched: why the last fetch failed."""
        failure = self._failure
        if isinstance(failure, httpx2.HTTPError | TimeoutError):
            problem = upstream_problem(failure)  # 503 (breaker open, unreachable) or 504
        else:
            problem = ExternalServiceError()  # the issuer answered, with no JWK set
        problem.detail = _KEYS_UNAVAILABLE
        return problem

    def _needs_fetch(self, kid: str) -> bool:
        now = self._clock()
        # Whatever the reason (random kids, a down issuer), never ask more often than this.
        if self._attempted_at is not None and now - self._attempted_at < self._min_refetch_interval:
            return False
        stale = self._fetched_at is None or now - self._fetched_at >= self._cache_seconds
        return stale or kid not in self._keys

    async def _fetch(self) -> None:
        try:
            keys = await self._download()
        except (httpx2.HTTPError, TimeoutError, ValueError) as exc:
            # Keys we already have stay valid; a short outage must not log everyone out.
            log.warning("oidc_jwks_fetch_failed", url=self.jwks_url, error=type(exc).__name__)
            self._failure = exc
        else:
            self._keys = keys
            self._fetched_at = self._clock()
            self._failure = None
        # Stamped when done: tasks that arrive mid-fetch queue on the lock for its result.
        self._attempted_at = self._clock()

    async def _download(self) -> dict[str, _Key]:
        # The client's timeouts bound each phase and its retries; this bounds the whole fetch.
        # A request deadline passing meanwhile is the issuer's fault: 504, not 503.
        with upstream_call():
            async with asyncio.timeout(self._timeout):
                response = await self._http.get(self.jwks_url)
        response.raise_for_status()
        return _parse_jwks(response.json())
