"""`app config`: every setting shown, every secret masked; `--check` refuses as start-up does."""

import json

import pytest

from app.core.config import Settings
from tests.cli.conftest import Run, one_line_error
from tests.harness import STRONG_SECRET

MARKER = "s3cr3t-marker-value-0123456789abcdef"


def secret_fields() -> list[str]:
    """Every setting typed SecretStr (or SecretStr | None), by environment name."""
    return [
        str(field.validation_alias)
        for group in Settings.groups().values()
        for field in group.model_fields.values()
        if "SecretStr" in str(field.annotation)
    ]


def test_the_secret_settings_are_the_known_ones() -> None:
    known = {"JWT_SECRET", "REDIS_URL", "SMTP_PASSWORD", "FIRST_SUPERUSER_PASSWORD"}
    assert known | {"METRICS_TOKEN", "ALERT_WEBHOOK_URL"} <= set(secret_fields())


def test_every_setting_is_shown_and_no_secret(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "JWT_SECRET": MARKER,
        "REDIS_URL": f"redis://:{MARKER}@127.0.0.1:6379/0",
        "JOBS_BROKER_URL": f"redis://:{MARKER}@broker.internal:6379/1",
        "SMTP_PASSWORD": MARKER,
        "METRICS_TOKEN": MARKER,
        "ALERT_WEBHOOK_URL": f"https://hooks.example.com/{MARKER}",
        "FIRST_SUPERUSER_EMAIL": "root@example.com",
        "FIRST_SUPERUSER_PASSWORD": MARKER,
        "DATABASE_URL": f"postgresql+asyncpg://app:{MARKER}@db.internal:5432/app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{MARKER}@otel.example.com",
    }
    assert set(secret_fields()) <= set(secrets)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    outcome = run_cli("config")
    assert outcome.code == 0, outcome.err
    assert MARKER not in outcome.out + outcome.err
    shown = dict(line.split("=", 1) for line in outcome.out.splitlines() if "=" in line)
    assert set(shown) == set(Settings.env_names())
    assert shown["JWT_SECRET"] == "********"
    assert shown["DATABASE_URL"].endswith("@db.internal:5432/app")
    assert shown["RATE_LIMIT_PER_MINUTE"] == "60"
    assert shown["ALLOWED_HOSTS"] == '["*"]'


def test_json_groups_the_settings(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", MARKER)
    outcome = run_cli("config", "--json")
    assert outcome.code == 0
    groups = json.loads(outcome.out)
    assert set(groups) == set(Settings.groups())
    assert groups["metrics"]["METRICS_TOKEN"] == "********"
    assert groups["redis"]["REDIS_URL"] is None
    assert MARKER not in outcome.out


def test_check_lists_what_production_refuses(run_cli: Run) -> None:
    outcome = run_cli("config", "--check", "--environment", "production")
    assert outcome.code == 1
    assert "JWT_SECRET is missing or a placeholder; set a random secret" in outcome.err
    assert "ALLOWED_HOSTS must name the service's hosts" in outcome.err
    assert "2 setting(s) refused for production" in outcome.err.splitlines()[-1]


def test_check_reads_the_environment(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", STRONG_SECRET)
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", "root@example.com")
    monkeypatch.setenv("FIRST_SUPERUSER_PASSWORD", "password1")
    outcome = run_cli("config", "--check")
    assert outcome.code == 1
    assert "DEBUG must be false in production" in outcome.err
    assert "FIRST_SUPERUSER_PASSWORD is weak" in outcome.err
    assert "password1" not in outcome.err
    assert "JWT_SECRET" not in outcome.err


def test_check_passes_a_safe_production_configuration(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", STRONG_SECRET)
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    outcome = run_cli("config", "--check", "--environment", "production")
    assert outcome.code == 0, outcome.err
    assert "accepted for production" in outcome.err


def test_check_names_invalid_values_too(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_BURST", "-1")
    outcome = run_cli("config", "--check", "--environment", "production")
    assert outcome.code == 1
    assert "RATE_LIMIT_BURST" in outcome.err
    assert "refused for production" in outcome.err.strip().splitlines()[-1]


def test_show_refuses_invalid_settings(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    assert "DATABASE_POOL_SIZE" in one_line_error(run_cli("config"))
