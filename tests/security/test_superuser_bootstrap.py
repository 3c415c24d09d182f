"""Attack: bring the bootstrap superuser back, or get promoted by it. It is made once, only."""

import uuid

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import delete, select, update

from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from app.users import service as users_service
from app.users.models import User
from tests.harness import make_settings, running
from tests.identity import register

pytestmark = pytest.mark.anyio

EMAIL, PASSWORD = "root@example.com", "a long root passphrase"


async def superusers(app: FastAPI) -> list[str]:
    async with resources_of(app).session_factory() as session:
        emails = await session.scalars(select(User.email).where(User.is_superuser))
        return sorted(emails.all())


async def bootstrap(app: FastAPI) -> None:
    """What every start-up does with FIRST_SUPERUSER_* set."""
    resources = resources_of(app)
    await users_service.ensure_superuser(
        session_factory=resources.session_factory,
        hasher=resources.password_hasher,
        email=EMAIL,
        password=PASSWORD,
    )


async def test_start_up_creates_the_configured_superuser(settings: Settings) -> None:
    # The lifespan runs before the test's rolled-back transaction: this row is really stored.
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    values = {"FIRST_SUPERUSER_EMAIL": email, "FIRST_SUPERUSER_PASSWORD": PASSWORD}
    app = create_app(make_settings(DATABASE_URL=settings.database.url, **values))
    try:
        async with running(app):
            assert email in await superusers(app)
    finally:
        async with resources_of(app).engine.begin() as connection:
            await connection.execute(delete(User).where(User.email == email))
        await resources_of(app).engine.dispose()


async def test_renaming_the_superuser_does_not_bring_the_configured_one_back(
    app: FastAPI,
) -> None:
    await bootstrap(app)
    async with resources_of(app).session_factory() as session:
        await session.execute(
            update(User).where(User.email == EMAIL).values(email="ops@example.com")
        )
        await session.commit()
    await bootstrap(app)  # the next restart
    assert await superusers(app) == ["ops@example.com"]


async def test_an_account_registered_with_the_configured_email_is_never_promoted(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client, EMAIL)
    await bootstrap(app)
    assert await superusers(app) == []
