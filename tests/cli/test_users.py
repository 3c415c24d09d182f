"""`app create-superuser`: flags, environment, prompt; the password policy; idempotence."""

import asyncio

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.users.models import User
from tests import migrations
from tests.cli.conftest import Run, one_line_error

STRONG = "Tr0ub4dor&3-horse-staple"


async def _users(url: str) -> dict[str, bool]:
    engine = migrations.test_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(User.email, User.is_superuser))
            return {str(row[0]): bool(row[1]) for row in rows}
    finally:
        await engine.dispose()


def users(url: str) -> dict[str, bool]:
    return asyncio.run(_users(url))


def test_flags_create_a_superuser_once(run_cli: Run, sqlite_url: str) -> None:
    outcome = run_cli("create-superuser", "--email", " Admin@Example.COM ", "--password", STRONG)
    assert outcome.code == 0, outcome.err
    assert "created" in outcome.err
    assert users(sqlite_url) == {"admin@example.com": True}
    again = run_cli("create-superuser", "--email", "admin@example.com", "--password", STRONG)
    assert again.code == 0
    assert "exists already" in again.err
    assert users(sqlite_url) == {"admin@example.com": True}


def test_environment_variables_are_read(
    run_cli: Run, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", "env@example.com")
    monkeypatch.setenv("FIRST_SUPERUSER_PASSWORD", STRONG)
    assert run_cli("create-superuser").code == 0
    assert users(sqlite_url) == {"env@example.com": True}


@pytest.mark.parametrize(
    "password", ["short-pw1", "aaaaaaaaaaaaaaaaaaaa", "abababababababab", "x" * 129]
)
def test_a_weak_password_is_refused(run_cli: Run, sqlite_url: str, password: str) -> None:
    outcome = run_cli("create-superuser", "--email", "a@example.com", "--password", password)
    assert outcome.code == 2
    assert "password" in one_line_error(outcome)
    assert password not in outcome.err
    assert users(sqlite_url) == {}


def test_an_invalid_email_is_refused(run_cli: Run, sqlite_url: str) -> None:
    outcome = run_cli("create-superuser", "--email", "not-an-email", "--password", STRONG)
    assert outcome.code == 2
    assert "email" in one_line_error(outcome)


def test_an_ordinary_account_is_never_promoted(run_cli: Run, sqlite_url: str) -> None:
    assert run_cli("seed", "--users", "1", "--items", "0").code == 0
    outcome = run_cli("create-superuser", "--email", "demo1@example.com", "--password", STRONG)
    assert "not a superuser" in one_line_error(outcome)
    assert users(sqlite_url) == {"demo1@example.com": False}


def test_the_prompt_hides_the_password_and_asks_twice(sqlite_url: str) -> None:
    get_settings.cache_clear()
    result = CliRunner().invoke(
        cli, ["create-superuser"], input=f"prompt@example.com\n{STRONG}\n{STRONG}\n"
    )
    assert result.exit_code == 0, result.output
    assert STRONG not in result.output
    assert "Password: \nRepeat for confirmation: \n" in result.output
    assert users(sqlite_url) == {"prompt@example.com": True}


def test_a_database_without_tables_is_one_line(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./empty.db")
    outcome = run_cli("create-superuser", "--email", "a@example.com", "--password", STRONG)
    assert "no such table" in one_line_error(outcome)
