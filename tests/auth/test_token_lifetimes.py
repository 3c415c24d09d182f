"""Each mailed token lives as long as its setting says, not a built-in default."""

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.auth.models import ActionToken
from app.core.config import Settings
from tests.harness import factory, started
from tests.identity import signed_up, unique_email

pytestmark = pytest.mark.anyio


async def lifetimes(app: FastAPI) -> dict[str, timedelta]:
    """Each stored action token's purpose and lifetime (there is one per purpose here)."""
    async with factory(app)() as session:
        rows = (await session.scalars(select(ActionToken))).all()
    return {row.purpose: row.expires_at - row.created_at for row in rows}


async def test_verification_and_email_change_tokens_live_email_verification_ttl_seconds(
    settings: Settings,
) -> None:
    async with started(settings, EMAIL_VERIFICATION_TTL_SECONDS=120) as (app, client):
        headers = await signed_up(client, unique_email("ttl"))
        verify = await client.post("/api/v1/auth/verify-email/request", headers=headers)
        change = await client.post(
            "/api/v1/users/me/email", json={"email": unique_email("moved")}, headers=headers
        )
        assert (verify.status_code, change.status_code) == (202, 202), change.text

        assert await lifetimes(app) == {
            "email_verification": timedelta(seconds=120),
            "email_change": timedelta(seconds=120),
        }


async def test_a_reset_token_lives_password_reset_ttl_seconds(settings: Settings) -> None:
    async with started(settings, PASSWORD_RESET_TTL_SECONDS=300) as (app, client):
        email = unique_email("reset")
        await signed_up(client, email)
        response = await client.post("/api/v1/auth/password-reset", json={"email": email})
        assert response.status_code == 202

        assert await lifetimes(app) == {"password_reset": timedelta(seconds=300)}
