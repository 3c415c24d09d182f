import asyncio
import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
import pytest

from app.core.security import (
    InvalidTokenError,
    PasswordHasher,
    create_access_token,
    decode_access_token,
    digest,
    new_secret,
    same_digest,
    token_subject,
)
from tests.harness import make_settings

pytestmark = pytest.mark.anyio

FAST = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


async def test_hash_is_argon2id_and_verifies() -> None:
    hasher = PasswordHasher(**FAST)
    hashed = await hasher.hash("correct horse")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify("correct horse", hashed) == (True, None)
    assert await hasher.verify("wrong horse", hashed) == (False, None)


async def test_bcrypt_hashes_verify_and_are_upgraded() -> None:
    hasher = PasswordHasher(**FAST)
    legacy = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    valid, upgraded = await hasher.verify("correct horse", legacy)
    assert valid
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$")
    assert await hasher.verify("wrong horse", legacy) == (False, None)


async def test_long_passwords_against_bcrypt_compare_the_first_72_bytes() -> None:
    hasher = PasswordHasher(**FAST)
    password = "é" * 100  # 200 bytes: bcrypt itself refuses more than 72
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    valid, _ = await hasher.verify(password, legacy)
    assert valid


async def test_other_argon2_parameters_are_upgraded() -> None:
    old = await PasswordHasher(time_cost=2, memory_kib=2048, parallelism=1).hash("pw-123456")
    valid, upgraded = await PasswordHasher(**FAST).verify("pw-123456", old)
    assert valid
    assert upgraded is not None
    assert "m=1024,t=1,p=1" in upgraded


async def test_no_hash_and_unknown_formats_never_match() -> None:
    hasher = PasswordHasher(**FAST)
    assert await hasher.verify("anything", None) == (False, None)
    assert await hasher.verify("anything", "plaintext-not-a-hash") == (False, None)


async def test_hashing_runs_in_threads_at_most_concurrency_at_once() -> None:
    hasher = PasswordHasher(1, **FAST)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, int(hasher.limiter.borrowed_tokens))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    loop_ticks = 0

    async def tick() -> None:
        nonlocal loop_ticks
        for _ in range(50):
            loop_ticks += 1
            await asyncio.sleep(0.001)

    await asyncio.gather(*(hasher.hash(f"pw-{i}-long-enough") for i in range(6)), tick())
    watcher.cancel()
    assert peak == 1
    assert loop_ticks == 50, "the event loop kept running while passwords were hashed"


def test_default_concurrency_is_the_cpu_count() -> None:
    assert PasswordHasher(**FAST).limiter.total_tokens == (os.cpu_count() or 1)


def test_access_tokens_round_trip_with_all_claims() -> None:
    settings = make_settings()
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    token = create_access_token(subject=user_id, session_id=session_id, auth=settings.auth, now=now)
    assert token.expires_in == settings.auth.access_token_ttl_seconds
    claims = decode_access_token(token.token, auth=settings.auth)
    assert claims["sub"] == str(user_id)
    assert claims["sid"] == str(session_id)
    assert claims["type"] == "access"
    assert {"exp", "iat", "nbf", "jti", "iss", "aud"} <= set(claims)


def forge(settings_overrides: dict[str, object], **claims: object) -> str:
    settings = make_settings()
    now = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "jti": "j",
        "iss": settings.auth.jwt_issuer,
        "aud": settings.auth.jwt_audience,
        "type": "access",
    }
    payload.update(claims)
    key = str(settings_overrides.get("key", settings.auth.jwt_secret.get_secret_value() * 2))
    algorithm = str(settings_overrides.get("algorithm", "HS256"))
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("overrides", "claims"),
    [
        ({}, {"exp": datetime.now(UTC) - timedelta(seconds=120)}),
        ({}, {"nbf": datetime.now(UTC) + timedelta(minutes=10)}),
        ({}, {"aud": "someone-else"}),
        ({}, {"iss": "someone-else"}),
        ({}, {"type": "refresh"}),
        ({"key": "another-secret-that-is-long-enough-for-hs256-and-hs512-too-" * 2}, {}),
        ({"algorithm": "HS512"}, {}),
    ],
    ids=["expired", "not-yet-valid", "audience", "issuer", "type", "signature", "algorithm"],
)
def test_decode_refuses_bad_tokens(overrides: dict[str, object], claims: dict[str, object]) -> None:
    with pytest.raises(InvalidTokenError):
        decode_access_token(forge(overrides, **claims), auth=make_settings().auth)


@pytest.mark.parametrize(
    "claims",
    [
        {"sid": ["a list"]},
        {"sid": 7},
        {"sid": "not an id"},
        {"sub": "not an id"},
        {"auth_time": "yesterday"},
        {"auth_time": 1.5},
        {"auth_time": True},
        {"auth_time": 10**20},
        {"exp": "9999999999"},
        {"nbf": True},
    ],
    ids=repr,
)
def test_decode_refuses_claims_of_the_wrong_type(claims: dict[str, object]) -> None:
    auth = make_settings().auth
    now = datetime.now(UTC)
    good = create_access_token(subject=uuid.uuid4(), session_id=uuid.uuid4(), auth=auth, now=now)
    secret = auth.jwt_secret.get_secret_value()
    original = decode_access_token(good.token, auth=auth)
    # Re-signed with the app's own secret: unchanged it passes, so only the changed claim fails.
    assert decode_access_token(jwt.encode(original, secret), auth=auth) == original
    token = jwt.encode({**original, **claims}, secret, algorithm=auth.jwt_algorithm)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, auth=auth)
    assert token_subject(token, auth=auth) is None


def test_decode_refuses_alg_none_and_missing_claims() -> None:
    settings = make_settings()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"sub": "x", "type": "access"}).encode())
    unsigned = f"{header}.{body.rstrip(b'=').decode()}."
    with pytest.raises(InvalidTokenError):
        decode_access_token(unsigned, auth=settings.auth)
    token = jwt.encode({"sub": "x", "type": "access"}, settings.auth.jwt_secret.get_secret_value())
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, auth=settings.auth)


def test_secrets_are_random_and_stored_as_digests() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(first) >= 43  # 32 random bytes, URL-safe base64
    assert len(digest(first)) == 64
    assert same_digest(first, digest(first))
    assert not same_digest(second, digest(first))
