"""Passwords, access tokens and opaque secrets: the primitives every credential is built on."""

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import jwt
from anyio import CapacityLimiter
from cryptography.fernet import Fernet, InvalidToken
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.core.settings_groups import AuthSettings

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret  # nosec B105
BCRYPT_MAX_BYTES = 72
PASSWORD_MIN_LENGTH = 8
# Long enough for passphrases, short enough that hashing cost stays bounded.
PASSWORD_MAX_LENGTH = 128
_REQUIRED_CLAIMS = ("sub", "sid", "exp", "iat", "nbf", "jti", "iss", "aud", "type")
# 9999-12-31T23:59:59Z: the latest moment a `datetime` holds, so `auth_time` always is one.
_LATEST_TIMESTAMP = 253_402_300_799


class _TruncatingBcryptHasher(BcryptHasher):
    """Verifies legacy bcrypt hashes, which only ever saw a password's first 72 bytes."""

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        raw = password.encode() if isinstance(password, str) else password
        return super().verify(raw[:BCRYPT_MAX_BYTES], hash)


class PasswordHasher:
    """Argon2id hashing in worker threads, a bounded number at once.

    Measured here: unbounded threads let a burst of logins starve the event loop (a cheap
    endpoint's p99 went from ~1 ms to ~120 ms); bounded to the CPU count it stays low.
    """

    def __init__(
        self,
        concurrency: int | None = None,
        *,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 4,
    ) -> None:
        self.limiter = CapacityLimiter(concurrency or os.cpu_count() or 1)
        argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._hash = PasswordHash((argon2, _TruncatingBcryptHasher()))
        # Verifying against this when the account is unknown makes every login cost the same.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> "PasswordHasher":
        """Build the process's password hasher from the `PASSWORD_HASH_*` settings."""
        return cls(
            auth.password_hash_concurrency,
            time_cost=auth.password_hash_time_cost,
            memory_kib=auth.password_hash_memory_kib,
            parallelism=auth.password_hash_parallelism,
        )

    async def hash(self, password: str) -> str:
        """Return an Argon2id hash of `password`."""
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self.limiter)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """Check `password`; return (matches, new hash when the stored one is outdated).

        With no stored hash (unknown account, or one without a password) the work is done
        against a dummy hash and the answer is always False.
        """
        target = hashed or self._dummy_hash
        try:
            valid, updated = await anyio.to_thread.run_sync(
                self._hash.verify_and_update, password, target, limiter=self.limiter
            )
        except UnknownHashError:
            return False, None
        return (valid and hashed is not None), updated


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An encoded access token and the seconds until it expires."""

    token: str
    expires_in: int


class InvalidTokenError(Exception):
    """A token that is malformed, expired, not for us, or of another type."""


def create_access_token(
    *,
    subject: uuid.UUID,
    session_id: uuid.UUID,
    auth: AuthSettings,
    now: datetime,
    authenticated_at: datetime | None = None,
) -> AccessToken:
    """Sign a short-lived access token for `subject` in the login session `session_id`.

    `sid` names the refresh token family, so "log out my other sessions" can keep this one,
    and every request checks it is still live. `auth_time` is when the user last proved who
    they are (the login, not a refresh): sensitive changes ask for a recent one.
    """
    ttl = auth.access_token_ttl_seconds
    claims = {
        "sub": str(subject),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
        "iss": auth.jwt_issuer,
        "aud": auth.jwt_audience,
        "type": ACCESS_TOKEN_TYPE,
        "auth_time": int((authenticated_at or now).timestamp()),
    }
    token = jwt.encode(claims, auth.jwt_secret.get_secret_value(), algorithm=auth.jwt_algorithm)
    return AccessToken(token=token, expires_in=ttl)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_claims(claims: dict[str, Any]) -> None:
    """Refuse claims of the wrong type or form, so that every reader may take them as they are.

    PyJWT checks the registered claims only as far as it uses them (it takes "10" for a time);
    every claim this service reads is checked here. The token is signed by us, so a wrong one
    means a leaked secret or a bug: refused (a 401), never a 500.
    """
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidTokenError("not an access token")
    if not all(_is_number(claims[name]) for name in ("exp", "nbf", "iat")):
        raise InvalidTokenError("exp, nbf and iat must be numbers")
    if not _is_uuid(claims["sub"]) or not _is_uuid(claims["sid"]):
        raise InvalidTokenError("sub and sid must be ids")
    moment = claims.get("auth_time")
    if moment is not None and (
        not isinstance(moment, int)
        or isinstance(moment, bool)
        or not 0 <= moment <= _LATEST_TIMESTAMP
    ):
        raise InvalidTokenError("auth_time must be a time in seconds")


def decode_access_token(token: str, *, auth: AuthSettings) -> dict[str, Any]:
    """Return the claims of a valid access token, or raise `InvalidTokenError`.

    The algorithm is pinned to `JWT_ALGORITHM`, so `alg=none` and algorithm confusion fail.
    Every claim the service reads has its type checked: `sub` and `sid` are ids (as strings),
    `auth_time`, when present, a whole number of seconds a `datetime` can hold.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            auth.jwt_secret.get_secret_value(),
            algorithms=[auth.jwt_algorithm],
            audience=auth.jwt_audience,
            issuer=auth.jwt_issuer,
            options={"require": list(_REQUIRED_CLAIMS)},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    _check_claims(claims)
    return claims


class AccessTokenDecoder:
    """`decode_access_token` with the claims of recent valid tokens kept, for their lifetime.

    A client sends the same token on every request for its whole lifetime, and checking its
    signature and claims is a fixed cost that the rate limiter (for its key) and the
    authentication would otherwise each pay per request. A kept token is still refused from
    its `exp` on (and before its `nbf`). Revocation is not the token's business: every request
    checks the token's session in the database (`auth.service.session_user`), so logout and
    deactivation still end it at once. Failures are not kept. At most `max_tokens` are kept;
    the oldest go first.
    """

    def __init__(self, auth: AuthSettings, *, max_tokens: int = 4096) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1.")
        self.auth = auth
        self.max_tokens = max_tokens
        self._valid: dict[str, tuple[dict[str, Any], float, float]] = {}

    def decode(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid access token, or raise `InvalidTokenError`."""
        kept = self._valid.get(token)
        now = time.time()
        if kept is not None:
            claims, not_before, expires = kept
            if not_before <= now < expires:
                return claims
            del self._valid[token]
        claims = decode_access_token(token, auth=self.auth)
        if len(self._valid) >= self.max_tokens:
            del self._valid[next(iter(self._valid))]
        # `require` made PyJWT check both are numbers.
        self._valid[token] = (claims, float(claims["nbf"]), float(claims["exp"]))
        return claims

    def subject(self, token: str) -> str | None:
        """Return the subject of a valid access token, or None; no database is involved."""
        try:
            subject = self.decode(token)["sub"]
        except InvalidTokenError:
            return None
        return subject if isinstance(subject, str) and subject else None


def new_secret() -> str:
    """Return a random, URL-safe secret with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Return the SHA-256 hex digest under which a secret is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored_digest: str) -> bool:
    """Compare a secret with a stored digest in constant time."""
    return hmac.compare_digest(digest(secret), stored_digest)


def token_subject(token: str, *, auth: AuthSettings) -> str | None:
    """Return the subject of a valid access token, or None; no database is involved."""
    try:
        subject = decode_access_token(token, auth=auth)["sub"]
    except InvalidTokenError:
        return None
    return subject if isinstance(subject, str) and subject else None


class SealBroken(Exception):
    """Sealed data that this secret did not seal, or that was changed."""


def _fernet(secret: str) -> Fernet:
    # A key of its own, derived from the secret: sealed data never doubles as a signature.
    key = hashlib.sha256(b"app.sealed-data:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(data: bytes, *, secret: str) -> str:
    """Encrypt and authenticate `data`, for storage that others may read (a job's arguments)."""
    return _fernet(secret).encrypt(data).decode()


def unseal(sealed: str, *, secret: str) -> bytes:
    """Return what `seal` sealed; raise `SealBroken` for anything else."""
    try:
        return _fernet(secret).decrypt(sealed.encode())
    except InvalidToken as exc:
        raise SealBroken from exc
