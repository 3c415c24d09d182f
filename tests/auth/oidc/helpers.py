"""Shared by the OIDC-mode tests: settings for the loopback issuer, stored users, checks."""

import uuid
from typing import Any

from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import func, select, update

from app.core.config import Settings
from app.db.base import utcnow
from app.deps import attach_resources, resources_of
from app.infra.oidc import OidcVerifier
from app.users import service as users_service
from app.users.models import User
from tests.harness import FakeClock, assert_problem, factory, make_settings
from tests.identity import DEFAULT_PASSWORD, JWT_SECRET, bearer
from tests.jwks import AUDIENCE, CACHE_SECONDS, ISSUER, MIN_REFETCH, JwksServer

NEW_KID = "rsa-2"
ME = "/api/v1/users/me"
LEGACY_ME = "/auth/me"
KEYS_UNAVAILABLE = "The identity provider's keys could not be fetched."


def oidc_settings(database_url: str, jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "AUTH_PROVIDER": "oidc",
        "OIDC_ISSUER": ISSUER,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_JWKS_URL": jwks_url,
        "OIDC_JWKS_CACHE_SECONDS": CACHE_SECONDS,
    }
    values.update(overrides)
    return make_settings(**values)


async def stored_users(app: FastAPI) -> list[User]:
    async with factory(app)() as session:
        return list((await session.scalars(select(User).order_by(User.created_at))).all())


async def user_count(app: FastAPI) -> int:
    async with factory(app)() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def stored_user(app: FastAPI, user_id: str) -> User:
    async with factory(app)() as session:
        user = await session.get(User, uuid.UUID(user_id))
    assert user is not None
    return user


async def create_local_account(app: FastAPI, email: str, *, verified: bool = False) -> User:
    """A password account as local mode made it (registration answers 404 in OIDC mode).

    With `verified`, its email was confirmed by mail, as linking to an issuer needs.
    """
    async with factory(app)() as session:
        user = await users_service.create(
            session=session,
            hasher=resources_of(app).password_hasher,
            email=email,
            password=DEFAULT_PASSWORD,
        )
        if verified:
            user.email_verified_at = utcnow()
        await session.commit()
    return user


async def set_user(app: FastAPI, user_id: str, **values: Any) -> None:
    async with factory(app)() as session:
        await session.execute(update(User).where(User.id == uuid.UUID(user_id)).values(**values))
        await session.commit()


async def me(client: AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def assert_invalid_token(response: Response) -> dict[str, Any]:
    body = assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    return body


def use_fake_clock(app: FastAPI, jwks: JwksServer) -> FakeClock:
    """Give the app a verifier like its own, on its own HTTP client, but with a clock we move.

    The verifier waits MIN_REFETCH seconds of real time between two JWKS fetches; moving a
    clock keeps the rotation and TTL tests fast.
    """
    clock = FakeClock()
    resources = resources_of(app)
    verifier = OidcVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks.url,
        cache_seconds=CACHE_SECONDS,
        http=resources.http,
        clock=clock,
        min_refetch_interval=MIN_REFETCH,
    )
    attach_resources(app, resources.replace(oidc_verifier=verifier))
    return clock
