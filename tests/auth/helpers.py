"""Shared by the local-auth tests: the paths, a running app, stored rows and token checks."""

import hashlib
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import select, update

from app.auth.models import RefreshToken
from app.auth.purge import purge_expired
from app.core.config import Settings
from app.users.models import User
from tests import harness
from tests.harness import assert_problem, factory
from tests.identity import DEFAULT_PASSWORD, JWT_SECRET

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
ME = "/api/v1/users/me"
LEGACY_LOGIN = "/auth/login"
LEGACY_ME = "/auth/me"


def started(
    settings: Settings, **overrides: Any
) -> AbstractAsyncContextManager[tuple[FastAPI, AsyncClient]]:
    """`tests.harness.started`, keeping the auth tests' JWT secret."""
    return harness.started(settings, JWT_SECRET=JWT_SECRET, **overrides)


def throttle_scope(email: str, account: uuid.UUID | None) -> str:
    """What the login throttle's Redis keys name: the address and its user (None: no user)."""
    return hashlib.sha256(f"{account or 'none'}:{email}".encode()).hexdigest()


def throttle_key(email: str, account: uuid.UUID | None) -> str:
    """The Redis key under which the login throttle counts the failures of an account."""
    return "login-failures:" + throttle_scope(email, account)


def assert_unauthorized(response: Response, code: str = "invalid_token") -> dict[str, Any]:
    """Assert a 401 problem that tells the client to use a bearer token."""
    body = assert_problem(response, 401, code)
    assert response.headers["www-authenticate"].split(" ")[0] == "Bearer"
    return body


async def login_response(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD, path: str = LOGIN
) -> Response:
    return await client.post(path, data={"username": email, "password": password})


async def set_user(app: FastAPI, email: str, **values: Any) -> None:
    """Change a stored user directly (for states the API does not offer)."""
    async with factory(app)() as session:
        await session.execute(update(User).where(User.email == email).values(**values))
        await session.commit()


async def stored_user(app: FastAPI, email: str) -> User:
    async with factory(app)() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


async def stored_refresh_tokens(app: FastAPI) -> list[RefreshToken]:
    async with factory(app)() as session:
        return list((await session.scalars(select(RefreshToken))).all())


async def stored_refresh_token(app: FastAPI, token: str) -> RefreshToken:
    digest = hashlib.sha256(token.encode()).hexdigest()
    rows = [row for row in await stored_refresh_tokens(app) if row.token_hash == digest]
    assert len(rows) == 1
    return rows[0]


async def expire(app: FastAPI, token: str) -> None:
    """Move a stored refresh token's expiry into the past (rather than waiting for it)."""
    row = await stored_refresh_token(app, token)
    async with factory(app)() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


async def purge(app: FastAPI) -> dict[str, int]:
    """Run what the hourly `purge_expired` job runs for the auth tables, now."""
    async with factory(app)() as session:
        counts = await purge_expired(
            session=session,
            now=datetime.now(UTC),
            login_window_seconds=900,
            login_known_client_days=30,
        )
        await session.commit()
    return counts


def claims_of(token: str, settings: Settings) -> dict[str, Any]:
    """Decode an access token the way a careful client of ours would."""
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.auth.jwt_secret.get_secret_value(),
        algorithms=[settings.auth.jwt_algorithm],
        audience=settings.auth.jwt_audience,
        issuer=settings.auth.jwt_issuer,
    )
    return claims
