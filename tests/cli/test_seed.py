"""`app seed`: demo accounts and items through the services, once."""

import asyncio

import pytest
from sqlalchemy import func, select

from app.items.models import Item
from app.users.models import User
from tests import migrations
from tests.cli.conftest import Run, one_line_error


async def _counts(url: str) -> tuple[int, int]:
    engine = migrations.test_engine(url)
    try:
        async with engine.connect() as connection:
            users = await connection.scalar(select(func.count()).select_from(User))
            items = await connection.scalar(select(func.count()).select_from(Item))
            return users or 0, items or 0
    finally:
        await engine.dispose()


def counts(url: str) -> tuple[int, int]:
    return asyncio.run(_counts(url))


def test_seed_creates_accounts_with_items_once(run_cli: Run, sqlite_url: str) -> None:
    outcome = run_cli("seed", "--users", "2", "--items", "3")
    assert outcome.code == 0, outcome.err
    assert "2 demo account(s) created with 6 item(s)" in outcome.err
    assert counts(sqlite_url) == (2, 6)
    again = run_cli("seed", "--users", "3", "--items", "3")
    assert again.code == 0
    assert "1 demo account(s) created with 3 item(s), 2 kept" in again.err
    assert counts(sqlite_url) == (3, 9)


def test_the_demo_accounts_log_in(run_cli: Run, sqlite_url: str) -> None:
    from app.core.security import PasswordHasher  # noqa: PLC0415

    assert run_cli("seed", "--users", "1", "--items", "0", "--password", "demo pass 42").code == 0

    async def stored_hash() -> str | None:
        engine = migrations.test_engine(sqlite_url)
        try:
            async with engine.connect() as connection:
                return await connection.scalar(select(User.hashed_password))
        finally:
            await engine.dispose()

    hasher = PasswordHasher(1, time_cost=1, memory_kib=1024, parallelism=1)
    valid, _ = asyncio.run(hasher.verify("demo pass 42", asyncio.run(stored_hash())))
    assert valid


def test_seed_refuses_production(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv(
        "JWT_SECRET", "7f3a9c1e5b8d2f6a0c4e9b7d1f3a5c8e2b6d0f4a9c7e1b3d5f8a2c6e0b4d9f71"
    )
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    assert "production" in one_line_error(run_cli("seed"))


def test_a_short_demo_password_is_refused(run_cli: Run, sqlite_url: str) -> None:
    assert run_cli("seed", "--password", "short").code == 2
    assert counts(sqlite_url) == (0, 0)
