import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import PLACEHOLDER_SECRET, Settings, SettingsError, load_settings
from tests.harness import PRODUCTION, make_settings

ROOT = Path(__file__).resolve().parents[2]
LONG_RANDOM = secrets.token_urlsafe(64)  # 86 varied characters


def env_example_names() -> list[str]:
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def test_env_example_lists_every_setting_and_nothing_stale() -> None:
    names = env_example_names()
    assert len(names) == len(set(names)), "a setting is listed twice"
    assert sorted(names) == sorted(Settings.env_names())


def test_env_example_values_are_the_defaults() -> None:
    from_example = load_settings(env_file=ROOT / ".env.example")
    assert from_example == load_settings(env_file=None)


def test_defaults_run_on_embedded_sqlite_without_redis() -> None:
    settings = load_settings(env_file=None)
    assert settings.database.url == "sqlite+aiosqlite:///./app.db"
    assert settings.redis.url is None
    assert settings.app.environment == "local"
    assert settings.docs_enabled


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://a.example.com,https://b.example.com", ["https://a.example.com", "https://b.example.com"]),
        (' ["https://a.example.com", "https://b.example.com"] ', ["https://a.example.com", "https://b.example.com"]),
        ("https://a.example.com , ", ["https://a.example.com"]),
    ],
)  # fmt: skip
def test_lists_accept_json_or_commas(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", raw)
    monkeypatch.setenv("ALLOWED_HOSTS", raw)
    settings = load_settings(env_file=None)
    assert expected == settings.http.cors_allow_origins
    assert expected == settings.http.allowed_hosts


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("DOCS_ENABLED", "")
    settings = load_settings(env_file=None)
    assert settings.redis.url is None
    assert settings.api.docs is None


def test_secrets_stay_out_of_reprs() -> None:
    settings = make_settings(
        JWT_SECRET="top-secret-value",
        REDIS_URL="redis://:redis-pass@localhost:6379/0",
        DATABASE_URL="postgresql+asyncpg://app:db-pass@localhost/app",
    )
    text = repr(settings) + str(settings)
    for secret in ("top-secret-value", "redis-pass", "db-pass"):
        assert secret not in text


def test_production_refuses_every_unsafe_setting_in_one_message() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            env_file=None,
            ENVIRONMENT="production",
            JWT_SECRET=PLACEHOLDER_SECRET,
            DEBUG=True,
            CORS_ALLOW_ORIGINS="*",
            CORS_ALLOW_CREDENTIALS=True,
        )
    message = str(caught.value.code)
    assert message.startswith("Invalid configuration:")
    for name in ("JWT_SECRET", "DEBUG", "CORS_ALLOW_ORIGINS"):
        assert name in message


@pytest.mark.parametrize(
    "secret", ["", "change-me", "CHANGEME", "secret", "short-but-not-placeholder"]
)
def test_production_refuses_weak_secrets(secret: str) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings(env_file=None, ENVIRONMENT="production", JWT_SECRET=secret)


def test_production_secret_length_follows_the_algorithm() -> None:
    production = {**PRODUCTION, "JWT_ALGORITHM": "HS512"}
    with pytest.raises(SettingsError, match="64 bytes"):
        load_settings(env_file=None, **{**production, "JWT_SECRET": LONG_RANDOM[:48]})
    settings = load_settings(env_file=None, **{**production, "JWT_SECRET": LONG_RANDOM[:64]})
    assert settings.auth.jwt_algorithm == "HS512"


def test_production_accepts_safe_settings() -> None:
    settings = load_settings(
        env_file=None,
        **PRODUCTION,
        CORS_ALLOW_ORIGINS="https://app.example.com",
        CORS_ALLOW_CREDENTIALS=True,
    )
    assert settings.app.environment == "production"
    assert not settings.docs_enabled
    assert load_settings(env_file=None, **PRODUCTION, DOCS_ENABLED=True).docs_enabled


def test_placeholder_secret_is_fine_outside_production() -> None:
    assert (
        make_settings(ENVIRONMENT="local").auth.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET
    )


def test_invalid_values_name_the_setting() -> None:
    with pytest.raises(SettingsError, match="DATABASE_POOL_SIZE"):
        load_settings(env_file=None, DATABASE_POOL_SIZE=0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # Errors of every kind of validator come through with their own message: an email's
        # `value_error` carries a context its type's template cannot format.
        ("FIRST_SUPERUSER_EMAIL", "not-an-email", "valid email address"),
        ("LOG_LEVEL", "LOUD", "Input should be"),
        ("GEOIP_BLOCKED_COUNTRIES", "Germany", "two-letter"),
        ("DATABASE_POOL_TIMEOUT", "soon", "valid number"),
    ],
)
def test_every_kind_of_invalid_value_is_one_clear_message(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(env_file=None, **{name: value})
    assert f"{name}: " in str(raised.value)
    assert message in str(raised.value)


def test_server_start_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JWT_", "DEBUG", "CORS_", "DATABASE_", "ENVIRONMENT"))
    }
    env.update(ENVIRONMENT="production", JWT_SECRET=PLACEHOLDER_SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", "0"],
        cwd=tmp_path,  # no .env there
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Invalid configuration:" in result.stderr
    assert "JWT_SECRET is missing or a placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings(env_file=None, TRUSTED_PROXIES="10.0.0.0/8,proxy.internal")
    assert load_settings(env_file=None, TRUSTED_PROXIES="10.0.0.0/8, ::1").http.trusted_proxies == [
        "10.0.0.0/8",
        "::1",
    ]
