"""`app migrate` and `app makemigration` on a real SQLite file."""

import configparser
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Run, one_line_error
from tests.migrations import ALEMBIC_INI

ROOT = ALEMBIC_INI.parent


def head_revision() -> str:
    versions = ROOT / "migrations" / "versions"
    revisions = {
        line.split("=", 1)[1].strip().strip("\"'")
        for path in versions.glob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith("revision")
    }
    downs = {
        line.split("=", 1)[1].strip().strip("\"'")
        for path in versions.glob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith("down_revision")
    }
    (head,) = revisions - downs
    return head


@pytest.fixture
def empty_sqlite(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = cli_env / "fresh.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return path


def test_migrate_applies_every_migration(run_cli: Run, empty_sqlite: Path) -> None:
    outcome = run_cli("migrate", "--config", str(ALEMBIC_INI))
    assert outcome.code == 0, outcome.err
    with sqlite3.connect(empty_sqlite) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert version == head_revision()
    assert {"users", "items", "refresh_tokens"} <= tables
    # Again: nothing to do, still fine.
    assert run_cli("migrate", "--config", str(ALEMBIC_INI)).code == 0


def test_migrate_sql_prints_postgresql_without_connecting(
    run_cli: Run, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1: offline mode never connects.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@127.0.0.1:1/app")
    outcome = run_cli("migrate", "--sql", "--config", str(ALEMBIC_INI))
    assert outcome.code == 0, outcome.err
    assert "CREATE TABLE users" in outcome.out
    assert "BEGIN;" in outcome.out
    assert f"'{head_revision()}'" in outcome.out


def test_migrate_sql_on_sqlite_says_why_not(run_cli: Run, empty_sqlite: Path) -> None:
    line = one_line_error(run_cli("migrate", "--sql", "--config", str(ALEMBIC_INI)))
    assert "PostgreSQL" in line
    assert not empty_sqlite.exists()


def test_migrate_without_alembic_ini_names_the_fix(run_cli: Run, empty_sqlite: Path) -> None:
    line = one_line_error(run_cli("migrate"))
    assert "alembic.ini not found" in line
    assert "--config" in line


@pytest.fixture
def project_copy(cli_env: Path) -> Path:
    """alembic.ini (without the ruff hooks of a dev install) and the migrations, copied."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ALEMBIC_INI)
    parser.remove_section("post_write_hooks")
    with (cli_env / "alembic.ini").open("w") as file:
        parser.write(file)
    (cli_env / "migrations" / "versions").mkdir(parents=True)
    for path in (ROOT / "migrations").glob("*.*"):
        (cli_env / "migrations" / path.name).write_bytes(path.read_bytes())
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        (cli_env / "migrations" / "versions" / path.name).write_bytes(path.read_bytes())
    return cli_env


def test_makemigration_writes_a_revision_on_top_of_head(
    run_cli: Run, project_copy: Path, sqlite_url: str
) -> None:
    outcome = run_cli("makemigration", "add invoices")
    assert outcome.code == 0, outcome.err
    written = Path(outcome.out.strip())
    assert written.parent == project_copy / "migrations" / "versions"
    assert written.name.endswith("_add_invoices.py")
    assert f"down_revision: str | Sequence[str] | None = '{head_revision()}'" in (
        written.read_text()
    )


def test_makemigration_needs_a_message(run_cli: Run, project_copy: Path) -> None:
    assert run_cli("makemigration", "  ").code == 2
