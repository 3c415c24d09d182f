"""The first superuser, created at start-up from FIRST_SUPERUSER_EMAIL and _PASSWORD.

The bootstrap commits outside the test's rolled-back transaction: `committed` cleans up.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx2 import AsyncClient
from sqlalchemy import delete

from app.auth.models import LoginFailure
from app.core.config import Settings
from app.core.security import PasswordHasher
from app.db.session import create_engine, create_session_factory
from app.main import create_app
from app.users import service as users_service
from app.users.models import User
from tests.harness import client_for, log_lines, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer, login, login_status
from tests.users.helpers import ME, USERS

pytestmark = pytest.mark.anyio

BOOTSTRAP_PASSWORD = "bootstrap passphrase 1"


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return make_settings(DATABASE_URL=database_url, **overrides)


# --- First superuser bootstrap -------------------------------------------------------------------


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[list[str]]:
    """Emails whose committed rows (users, login failures) are deleted after the test.

    The bootstrap runs outside the test's rolled-back transaction, so what it creates stays.
    """
    emails: list[str] = []
    yield emails
    engine = create_engine(settings.database, application_name="tests")
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(LoginFailure).where(LoginFailure.email.in_(emails)))
            await connection.execute(delete(User).where(User.email.in_(emails)))
    finally:
        await engine.dispose()


async def test_first_superuser_is_created_once(settings: Settings, committed: list[str]) -> None:
    committed.append("root@example.com")
    bootstrap = settings_for(
        settings.database.url,
        FIRST_SUPERUSER_EMAIL=" Root@Example.com ",
        FIRST_SUPERUSER_PASSWORD=BOOTSTRAP_PASSWORD,
    )

    ids = []
    for start in range(2):
        app = create_app(bootstrap)
        with log_lines() as logs:
            async with running(app), client_for(app) as client:
                tokens = await login(client, "root@example.com", BOOTSTRAP_PASSWORD)
                me = (await client.get(ME, headers=bearer(tokens))).json()
                listing = await client.get(USERS, params={"limit": 100}, headers=bearer(tokens))
        assert me["email"] == "root@example.com"
        assert me["is_superuser"] is True
        assert me["is_active"] is True
        assert listing.status_code == 200, listing.text
        roots = [u for u in listing.json()["items"] if u["email"] == "root@example.com"]
        assert [u["id"] for u in roots] == [me["id"]]
        assert len(logs.events("superuser_created")) == (1 if start == 0 else 0)
        ids.append(me["id"])
    assert ids[0] == ids[1]


async def test_first_superuser_leaves_an_existing_account_alone(
    settings: Settings, committed: list[str]
) -> None:
    committed.append("boss@example.com")
    engine = create_engine(settings.database, application_name="tests")
    try:
        async with create_session_factory(engine)() as session:
            existing = await users_service.create(
                session=session,
                hasher=PasswordHasher.from_settings(settings.auth),
                email="boss@example.com",
                password=DEFAULT_PASSWORD,
                full_name="The Boss",
            )
            await session.commit()
    finally:
        await engine.dispose()

    bootstrap = settings_for(
        settings.database.url,
        FIRST_SUPERUSER_EMAIL="BOSS@example.com",
        FIRST_SUPERUSER_PASSWORD=BOOTSTRAP_PASSWORD,
    )
    app = create_app(bootstrap)
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            assert await login_status(client, "boss@example.com", BOOTSTRAP_PASSWORD) == 401
            me = (await client.get(ME, headers=await signed_in(client, "boss@example.com"))).json()
    assert logs.events("superuser_created") == []
    assert me["id"] == str(existing.id)
    assert me["is_superuser"] is False
    assert me["full_name"] == "The Boss"


async def signed_in(client: AsyncClient, email: str) -> dict[str, str]:
    return bearer(await login(client, email))
