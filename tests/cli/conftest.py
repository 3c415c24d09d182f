"""Running `app` commands in-process: a clean environment, a migrated SQLite file, output."""

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.core.config import Settings, get_settings
from tests.migrations import ALEMBIC_INI, migrate

# What every command sees: the test environment, cheap hashing, no `.env` (the cwd is empty).
BASE_ENV = {
    "ENVIRONMENT": "test",
    "LOG_FORMAT": "json",
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "1024",
    "PASSWORD_HASH_PARALLELISM": "1",
}


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


Run = Callable[..., Outcome]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory and only the settings the test gives."""
    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    # migrations/env.py reads the process-wide settings: each test sets its own.
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL of a migrated SQLite file of the test's own."""
    url = f"sqlite+aiosqlite:///{cli_env / 'cli.db'}"
    asyncio.run(migrate(url, "head"))
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def run_cli(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `app ARGS...` in this process; return its exit code and output."""

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        get_settings.cache_clear()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def one_line_error(outcome: Outcome) -> str:
    """The error line, after checking it is the only thing on stderr and has no traceback."""
    assert outcome.code != 0
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, outcome.err
    assert "Traceback" not in outcome.err
    assert lines[0].startswith("app: error: ")
    return lines[0]


__all__ = ["ALEMBIC_INI", "Outcome", "Run", "one_line_error"]
