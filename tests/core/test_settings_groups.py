"""Settings groups: one per concern, flat environment names, one message for every bad value."""

import pytest
from pydantic import ValidationError

from app.core.config import Settings, build_settings, load_settings
from app.core.settings_groups import DatabaseSettings, SettingsGroup


def test_every_environment_name_belongs_to_exactly_one_group() -> None:
    names = Settings.env_names()
    assert len(names) == len(set(names))
    for name, group in Settings.groups().items():
        assert issubclass(group, SettingsGroup), name
        assert group.env_names(), name


def test_a_group_reads_its_flat_names_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./from-env.db")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "7")
    database = DatabaseSettings(_env_file=None)
    assert (database.url, database.pool_size) == ("sqlite+aiosqlite:///./from-env.db", 7)
    settings = load_settings(env_file=None)
    assert settings.database == database


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_SECONDS", "30")
    assert load_settings(env_file=None).cache.ttl_seconds == 30
    assert load_settings(env_file=None, CACHE_TTL_SECONDS=5).cache.ttl_seconds == 5


def test_invalid_values_of_several_groups_are_named_together() -> None:
    with pytest.raises(ValidationError) as caught:
        build_settings(env_file=None, DATABASE_POOL_SIZE=0, RATE_LIMIT_PER_MINUTE=0, SMTP_PORT=0)
    assert sorted(error["loc"][0] for error in caught.value.errors()) == [
        "DATABASE_POOL_SIZE",
        "RATE_LIMIT_PER_MINUTE",
        "SMTP_PORT",
    ]


def test_an_unknown_setting_name_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="unknown settings: DATABSE_URL"):
        build_settings(env_file=None, DATABSE_URL="sqlite+aiosqlite://")


def test_rules_across_groups_name_each_missing_companion() -> None:
    with pytest.raises(ValidationError) as caught:
        build_settings(env_file=None, AUTH_PROVIDER="oidc", MAIL_BACKEND="smtp")
    message = str(caught.value)
    for name in ("OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL", "SMTP_HOST"):
        assert name in message


def test_settings_and_their_groups_are_frozen() -> None:
    settings = load_settings(env_file=None)
    with pytest.raises(ValidationError):
        settings.database.pool_size = 9  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.database = settings.database  # type: ignore[misc]


def test_the_app_name_gives_the_key_prefix() -> None:
    assert load_settings(env_file=None, APP_NAME="  Acme: Orders API! ").app.slug == (
        "acme-orders-api"
    )
