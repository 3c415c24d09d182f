"""The app over ASGI for schemathesis, with three identities: a user, a narrow API key, an admin."""

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from schemathesis.python import asgi
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.users.models import User
from tests.harness import make_settings
from tests.identity import DEFAULT_PASSWORD, unique_email
from tests.migrations import migrate, test_engine
from tests.services import postgres_url


# Built at import, as schemathesis needs the schema to collect tests; nothing connects until the
# first request, after `contract_database` has migrated the database.
# A database of its own beside TEST_DATABASE_URL's: what the fuzzer leaves behind (thousands
# of rows) must not meet the other tests, which share theirs.
def _own_database(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_contract").render_as_string(hide_password=False)


TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or "postgresql+asyncpg://unset/none"
CONTRACT_DATABASE_URL = _own_database(TEST_DATABASE_URL)
APP = create_app(make_settings(DATABASE_URL=CONTRACT_DATABASE_URL))
# Examples per operation as a normal user (`make fuzz` raises it); the API key and the
# superuser, which mostly take other branches of authorization, get a tenth as many.
# 50 per operation in `make test` (at 100 it took a tenth of the suite's time); `make fuzz`: 1000.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "50"))
OTHER_IDENTITY_EXAMPLES = max(MAX_EXAMPLES // 10, 10)
# The scopes of the narrow key: it reads items, and may do nothing else.
NARROW_SCOPES = ["items:read"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Headers that authenticate one caller."""

    name: str
    headers: dict[str, str]


async def _promote(url: str, email: str) -> None:
    engine = test_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(User).where(User.email == email).values(is_superuser=True)
            )
    finally:
        await engine.dispose()


def _sign_up(client: asgi.ASGIClient, email: str) -> dict[str, str]:
    created = client.post("/api/v1/users", json={"email": email, "password": DEFAULT_PASSWORD})
    assert created.status_code == 201, created.text
    token = client.post(
        "/api/v1/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="session")
def contract_database() -> str:
    """A fresh, migrated PostgreSQL database beside the test database: the one `APP` uses."""
    asyncio.run(_recreate(postgres_url(), CONTRACT_DATABASE_URL))
    asyncio.run(migrate(CONTRACT_DATABASE_URL, "head"))
    return CONTRACT_DATABASE_URL


async def _recreate(server_url: str, url: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def identities(contract_database: str) -> Iterator[dict[str, Identity]]:
    """A normal user, an API key with one scope, and a superuser, made through the API."""
    with asgi.get_client(APP) as client:  # type: ignore[arg-type]  # any ASGI app
        user = _sign_up(client, unique_email("contract-user"))
        key = client.post(
            "/api/v1/api-keys",
            json={"name": "narrow", "scopes": NARROW_SCOPES, "current_password": DEFAULT_PASSWORD},
            headers=user,
        )
        assert key.status_code == 201, key.text
        admin_email = unique_email("contract-admin")
        admin = _sign_up(client, admin_email)
    asyncio.run(_promote(contract_database, admin_email))
    yield {
        "user": Identity("user", user),
        "api_key": Identity("api_key", {"X-API-Key": key.json()["key"]}),
        "superuser": Identity("superuser", admin),
    }
    asgi.shutdown_lifespans()
