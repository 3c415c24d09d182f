"""The access-token decoder keeps valid tokens' claims, never past their validity."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.core.security import AccessTokenDecoder, InvalidTokenError, create_access_token
from tests.harness import make_settings


def token_at(now: datetime) -> str:
    auth = make_settings().auth
    return create_access_token(
        subject=uuid.uuid4(), session_id=uuid.uuid4(), auth=auth, now=now
    ).token


def test_a_valid_token_is_checked_once_then_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = AccessTokenDecoder(make_settings().auth)
    token = token_at(datetime.now(UTC))
    claims = decoder.decode(token)
    checks: list[str] = []
    monkeypatch.setattr("app.core.security.decode_access_token", lambda t, **_: checks.append(t))
    assert decoder.decode(token) is claims
    assert decoder.subject(token) == claims["sub"]
    assert checks == []


def test_a_kept_token_is_refused_from_its_expiry_on() -> None:
    auth = make_settings().auth
    decoder = AccessTokenDecoder(auth)
    # Issued so that it expires a few seconds from now (whole seconds: a loaded machine may
    # take one between signing and the first check), then checked again just past its `exp`.
    issued = datetime.now(UTC) - timedelta(seconds=auth.access_token_ttl_seconds - 3)
    token = token_at(issued)
    claims = decoder.decode(token)
    assert claims["sub"]
    time.sleep(max(0.0, claims["exp"] - time.time()) + 0.1)
    with pytest.raises(InvalidTokenError):
        decoder.decode(token)
    assert decoder.subject(token) is None


def test_a_token_not_yet_valid_is_never_kept() -> None:
    decoder = AccessTokenDecoder(make_settings().auth)
    with pytest.raises(InvalidTokenError):
        decoder.decode(token_at(datetime.now(UTC) + timedelta(seconds=60)))
    assert decoder._valid == {}


def test_invalid_tokens_are_not_kept_and_the_oldest_go_first() -> None:
    decoder = AccessTokenDecoder(make_settings().auth, max_tokens=2)
    assert decoder.subject("not.a.token") is None
    tokens = [token_at(datetime.now(UTC)) for _ in range(3)]
    for token in tokens:
        decoder.decode(token)
    assert list(decoder._valid) == tokens[1:]
    with pytest.raises(ValueError, match="max_tokens"):
        AccessTokenDecoder(make_settings().auth, max_tokens=0)


def test_a_token_of_another_secret_is_refused_even_if_kept_elsewhere() -> None:
    ours = AccessTokenDecoder(make_settings().auth)
    theirs = AccessTokenDecoder(make_settings(JWT_SECRET="x" * 64).auth)
    token = token_at(datetime.now(UTC))
    assert ours.decode(token)
    with pytest.raises(InvalidTokenError):
        theirs.decode(token)
