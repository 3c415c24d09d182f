"""Helpers of the attack tests: tokens from the console mailer, statement counts, a superuser."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import update

from app.auth.action_tokens import RESEND_INTERVAL
from app.auth.models import ActionToken
from app.deps import resources_of
from app.users.models import User
from tests.identity import DEFAULT_PASSWORD, bearer, login, mailed_token, register

ME = "/api/v1/users/me"
KEYS = "/api/v1/api-keys"
ITEMS = "/api/v1/items"
# What production needs besides ENVIRONMENT: a real secret and named hosts.
PRODUCTION = {
    "ENVIRONMENT": "production",
    "JWT_SECRET": secrets.token_hex(32),
    "ALLOWED_HOSTS": "testserver",
}


async def account(client: AsyncClient, email: str) -> dict[str, str]:
    """Register `email` and return the headers of a fresh login."""
    await register(client, email)
    return bearer(await login(client, email))


async def me_status(client: AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get(ME, headers=headers)).status_code


async def create_key(client: AsyncClient, headers: dict[str, str], **body: Any) -> Response:
    body.setdefault("name", "key")
    return await client.post(KEYS, json=body, headers=headers)


async def make_superuser(app: FastAPI, email: str) -> None:
    async with resources_of(app).session_factory() as session:
        await session.execute(update(User).where(User.email == email).values(is_superuser=True))
        await session.commit()


__all__ = ["DEFAULT_PASSWORD", "ITEMS", "KEYS", "ME", "PRODUCTION", "mailed_token"]


async def age_action_tokens(app: FastAPI) -> None:
    """Date every action token `RESEND_INTERVAL` ago: another of each purpose may be mailed."""
    async with resources_of(app).session_factory() as session:
        moment = datetime.now(UTC) - RESEND_INTERVAL
        await session.execute(update(ActionToken).values(created_at=moment))
        await session.commit()


@dataclass(frozen=True)
class Store:
    """Where the app counts failures: the settings that choose it, and the Redis to clean."""

    settings: dict[str, Any]
    redis: str | None = None
