"""Shared by the user tests: the paths, an administrator, and what the database holds."""

import uuid

from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import func, select

from app.api_keys.models import ApiKey
from app.auth.models import RefreshToken
from app.deps import resources_of
from app.users.models import User
from tests.harness import factory
from tests.identity import bearer, login, make_superuser, register

USERS = "/api/v1/users"
ME = f"{USERS}/me"
EMAIL_CHANGE = f"{ME}/email"
EMAIL_CHANGE_CONFIRM = "/api/v1/auth/email-change/confirm"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
PUBLIC_FIELDS = {
    "id", "email", "full_name", "is_active", "is_superuser", "email_verified_at", "created_at",
}  # fmt: skip
NEW_PASSWORD = "a brand new passphrase"


async def refresh_status(client: AsyncClient, refresh_token: str) -> int:
    response = await client.post(REFRESH, json={"refresh_token": refresh_token})
    return response.status_code


async def admin_headers(client: AsyncClient, app: FastAPI, email: str) -> dict[str, str]:
    """Register `email`, promote it to superuser and return its bearer header."""
    await register(client, email)
    await make_superuser(app, email)
    return bearer(await login(client, email))


async def stored_user(app: FastAPI, user_id: str) -> User | None:
    async with factory(app)() as session:
        return await session.get(User, uuid.UUID(user_id))


async def rows_of(app: FastAPI, model: type[RefreshToken | ApiKey], user_id: str) -> int:
    async with resources_of(app).session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(model).where(model.user_id == uuid.UUID(user_id))
        )
    return int(count or 0)


async def refresh_token_rows(app: FastAPI, user_id: str) -> int:
    return await rows_of(app, RefreshToken, user_id)
