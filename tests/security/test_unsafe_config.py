"""Attack: exploit a deployment's weak configuration. Outside development, start-up refuses it."""

import secrets
from typing import Any

import pytest

from app.core.config import SettingsError, load_settings
from app.core.settings_safety import estimated_bits

SECRET = secrets.token_hex(32)
PRODUCTION: dict[str, Any] = {
    "ENVIRONMENT": "production",
    "JWT_SECRET": SECRET,
    "ALLOWED_HOSTS": "api.example.com",
}


def refused(**values: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, **values)
    return str(caught.value.code)


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(
    "secret",
    [
        "change-me-to-a-random-secret-of-32-or-more-characters",  # the public placeholder
        "a" * 32,  # repeated
        "ab" * 32,  # low entropy
        "short-but-varied-Secret-1",  # too short for HS256
    ],
)
def test_weak_jwt_secrets_are_refused_outside_development(environment: str, secret: str) -> None:
    values = {**PRODUCTION, "ENVIRONMENT": environment, "JWT_SECRET": secret}
    assert "JWT_SECRET" in refused(**values)


@pytest.mark.parametrize("environment", ["local", "test"])
def test_development_may_keep_the_placeholder(environment: str) -> None:
    assert load_settings(env_file=None, ENVIRONMENT=environment).app.environment == environment


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"TRUST_PROXY_HEADERS": True, "TRUSTED_PROXIES": "::/0,10.0.0.1"}, "TRUSTED_PROXIES"),
        (
            {
                "FIRST_SUPERUSER_EMAIL": "root@example.com",
                "FIRST_SUPERUSER_PASSWORD": "Passw0rd!2024",
            },
            "FIRST_SUPERUSER_PASSWORD",
        ),
        ({"DATABASE_ECHO": True}, "DATABASE_ECHO"),
        ({"LOG_FORMAT": "console"}, "LOG_FORMAT"),
        (
            {
                "MAIL_BACKEND": "smtp",
                "SMTP_HOST": "mail",
                "SMTP_USERNAME": "u",
                "SMTP_PASSWORD": "p",
                "SMTP_STARTTLS": False,
            },
            "SMTP_STARTTLS",
        ),
        ({"DEBUG": True}, "DEBUG"),
        ({"CORS_ALLOW_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": True}, "CORS_ALLOW_ORIGINS"),
        # Sent by sandboxed frames and local files: any page can make its requests "null".
        ({"CORS_ALLOW_ORIGINS": "https://app.example.com,null"}, "CORS_ALLOW_ORIGINS"),
    ],
)
def test_production_refuses_each_unsafe_setting(unsafe: dict[str, Any], named: str) -> None:
    assert named in refused(**{**PRODUCTION, **unsafe})


def test_one_message_names_every_unsafe_setting() -> None:
    message = refused(
        ENVIRONMENT="production",
        JWT_SECRET="a" * 40,
        DATABASE_ECHO=True,
        LOG_FORMAT="console",
        DEBUG=True,
    )
    for name in ("JWT_SECRET", "ALLOWED_HOSTS", "DATABASE_ECHO", "LOG_FORMAT", "DEBUG"):
        assert name in message


def test_a_safe_production_configuration_starts() -> None:
    settings = load_settings(
        env_file=None,
        **PRODUCTION,
        FIRST_SUPERUSER_EMAIL="root@example.com",
        FIRST_SUPERUSER_PASSWORD="correct horse battery staple",
        TRUST_PROXY_HEADERS=True,
        TRUSTED_PROXIES="10.0.0.0/8",
    )
    assert settings.app.environment == "production"


def test_the_entropy_estimate_punishes_repetition() -> None:
    assert estimated_bits("a" * 64) == 0
    assert estimated_bits("ab" * 16) == 32
    assert estimated_bits(SECRET) > 200
