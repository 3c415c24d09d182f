"""Helpers for tests that need accounts and tokens: they go through the real API."""

import re
import uuid
from typing import Any

from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import update

from app.deps import resources_of
from app.users.models import User
from tests.harness import LogLines

DEFAULT_PASSWORD = "correct horse battery"
# 64 bytes: long enough for every HMAC algorithm, so PyJWT has nothing to warn about.
JWT_SECRET = "test-secret-for-login-and-token-tests-0123456789abcdef0123456789"


def unique_email(name: str = "user") -> str:
    """An address no other test uses: failed logins kept in Redis outlive a test."""
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD, **extra: Any
) -> dict[str, Any]:
    """Register through POST /api/v1/users and return the created user."""
    response = await client.post(
        "/api/v1/users", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> dict[str, Any]:
    """Log in through the OAuth2 password form and return the token pair."""
    response = await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def login_status(client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> int:
    """The status of a login attempt through the OAuth2 password form."""
    response = await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    )
    return response.status_code


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    """Authorization header for an access token (or a token pair)."""
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def signed_up(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> dict[str, str]:
    """Register and log in; return the bearer header."""
    await register(client, email, password)
    return bearer(await login(client, email, password))


async def make_superuser(app: FastAPI, email: str) -> None:
    """Promote an existing account directly in the database (there is no API for the first)."""
    async with resources_of(app).session_factory() as session:
        await session.execute(update(User).where(User.email == email).values(is_superuser=True))
        await session.commit()


# 43 URL-safe characters, which may begin or end with "-": not a `\b` word boundary.
_MAILED_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def mailed_token(logs: LogLines, to: str, subject: str) -> str:
    """The single-use token in the newest console mail to `to` with `subject`."""
    mails = [m for m in logs.events("mail_sent") if m["to"] == to and m["subject"] == subject]
    assert mails, f"no mail {subject!r} to {to}"
    found = _MAILED_TOKEN.search(mails[-1]["body"])
    assert found is not None, mails[-1]["body"]
    return found.group(0)
