"""The `app` command as a whole: help with examples everywhere, one-line errors, exit codes."""

import subprocess
import sys

import pytest

from app.cli import cli, main
from tests.cli.conftest import Run, one_line_error

COMMANDS = sorted(command.name for command in cli.registered_commands if command.name is not None)


def test_every_command_is_registered() -> None:
    expected = {"serve", "migrate", "makemigration", "create-superuser", "openapi", "config"}
    assert expected | {"seed", "verify", "worker", "scheduler"} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(run_cli: Run, command: str) -> None:
    outcome = run_cli(command, "--help")
    assert outcome.code == 0
    assert "Usage: app " + command in outcome.out
    assert "Examples" in outcome.out
    assert f"$ app {command}" in outcome.out or "app " + command in outcome.out


def test_no_arguments_shows_the_commands(run_cli: Run) -> None:
    outcome = run_cli()
    assert outcome.code == 0
    for command in COMMANDS:
        assert command in outcome.out


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["serve", "--no-such-option"],
        ["serve", "--port", "not-a-number"],
        ["serve", "--workers", "0"],
        ["makemigration"],
        ["verify"],
    ],
)
def test_bad_usage_is_one_line_and_exit_2(run_cli: Run, args: list[str]) -> None:
    outcome = run_cli(*args)
    assert outcome.code == 2
    line = one_line_error(outcome)
    assert "--help" in line


def test_invalid_settings_are_one_line_naming_each(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "many")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    line = one_line_error(run_cli("config"))
    assert "invalid configuration" in line
    assert "RATE_LIMIT_PER_MINUTE" in line
    assert "LOG_LEVEL" in line


def test_an_unexpected_error_is_one_line_without_secrets(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database that refuses the connection: the driver's error, one line, no password.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://admin:hunter2@127.0.0.1:1/app")
    outcome = run_cli(
        "create-superuser", "--email", "a@example.com", "--password", "Tr0ub4dor&3-horse-staple"
    )
    line = one_line_error(outcome)
    assert "hunter2" not in outcome.err
    assert "unavailable" in line


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "verify", "ftp://example.com"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "app: error: not an http(s) URL: 'ftp://example.com'\n"


def test_main_returns_the_exit_code() -> None:
    assert main(["--help"]) == 0
