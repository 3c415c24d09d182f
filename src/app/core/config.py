"""Settings: every settings group composed into one object, validated once at start-up.

Operators set flat environment variables (`DATABASE_URL`, `RATE_LIMIT_PER_MINUTE`); code reads
the group of its concern (`settings.database.url`, `settings.rate_limit.per_minute`). The groups
live in `settings_groups` and, for running the service and what it reports,
`settings_operations`. Rules that span groups live in one validator here, which names every bad
setting at once.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from app.core.settings_groups import (
    PLACEHOLDER_SECRET,
    ApiSettings,
    AppSettings,
    AuthSettings,
    CacheSettings,
    DatabaseSettings,
    HttpSettings,
    LoggingSettings,
    MailSettings,
    OidcSettings,
    RateLimitSettings,
    RedisSettings,
    SettingsGroup,
    SuperuserSettings,
)
from app.core.settings_jobs import JobsSettings
from app.core.settings_operations import (
    AlertSettings,
    GeoIpSettings,
    MetricsSettings,
    ObservabilitySettings,
    OutboundSettings,
    ServerSettings,
)
from app.core.settings_safety import unsafe_settings

__all__ = [
    "PLACEHOLDER_SECRET",
    "Settings",
    "SettingsError",
    "build_settings",
    "get_settings",
    "load_settings",
]

_SUPERUSER_PASSWORD_LENGTH = range(8, 129)


class Settings(BaseModel):
    """Every setting of the service, one group per concern."""

    model_config = ConfigDict(frozen=True)

    app: AppSettings
    logging: LoggingSettings
    database: DatabaseSettings
    redis: RedisSettings
    server: ServerSettings
    observability: ObservabilitySettings
    metrics: MetricsSettings
    alerts: AlertSettings
    auth: AuthSettings
    oidc: OidcSettings
    first_superuser: SuperuserSettings
    mail: MailSettings
    http: HttpSettings
    outbound: OutboundSettings
    rate_limit: RateLimitSettings
    cache: CacheSettings
    api: ApiSettings
    geoip: GeoIpSettings
    jobs: JobsSettings

    @classmethod
    def groups(cls) -> dict[str, type[SettingsGroup]]:
        """Return each group's class by its attribute name."""
        return {name: field.annotation for name, field in cls.model_fields.items()}  # type: ignore[misc]

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Return every environment variable the service reads, group by group."""
        return tuple(name for group in cls.groups().values() for name in group.env_names())

    @property
    def docs_enabled(self) -> bool:
        """Whether `/docs`, `/redoc` and the OpenAPI schema are served."""
        if self.api.docs is not None:
            return self.api.docs
        return self.app.environment != "production"

    @model_validator(mode="after")
    def _require_companion_settings(self) -> Self:
        """Refuse a mode whose required settings are missing, naming each one."""
        missing = []
        if self.auth.provider == "oidc":
            missing += [
                name
                for name, value in (
                    ("OIDC_ISSUER", self.oidc.issuer),
                    ("OIDC_AUDIENCE", self.oidc.audience),
                    ("OIDC_JWKS_URL", self.oidc.jwks_url),
                )
                if not value
            ]
        if self.mail.backend == "smtp" and not self.mail.smtp_host:
            missing.append("SMTP_HOST")
        email, password = self.first_superuser.email, self.first_superuser.password
        if bool(email) != bool(password):
            missing.append("FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD (both or neither)")
        if password and len(password.get_secret_value()) not in _SUPERUSER_PASSWORD_LENGTH:
            missing.append("FIRST_SUPERUSER_PASSWORD of 8 to 128 characters")
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_settings(self) -> Self:
        """Name every setting unsafe outside development at once, so one restart fixes all."""
        problems = unsafe_settings(self)
        if problems:
            raise ValueError(f"unsafe {self.app.environment} settings: " + "; ".join(problems))
        return self


class SettingsError(SystemExit):
    """Invalid configuration: exits the process with one message that names every bad setting."""

    def __init__(self, error: ValidationError) -> None:
        lines = [f"  - {_describe(item)}" for item in error.errors()]
        super().__init__("Invalid configuration:\n" + "\n".join(lines))


def _describe(item: Any) -> str:
    location = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def build_settings(*, env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Build settings from the environment, `env_file` and `overrides` (flat names).

    Raise one `ValidationError` that names every invalid setting of every group; an unknown
    override name is a programming error (`TypeError`), so a typo never passes silently.
    """
    unknown = sorted(set(overrides) - set(Settings.env_names()))
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    groups: dict[str, SettingsGroup] = {}
    errors: list[ErrorDetails] = []
    for name, group in Settings.groups().items():
        values = {key: overrides[key] for key in group.env_names() if key in overrides}
        try:
            groups[name] = group(_env_file=env_file, **values)
        except ValidationError as error:
            errors += error.errors()
    if errors:
        # Each error is carried over with its own message: rebuilding it from its type and
        # context fails for errors whose context lacks what the type's template needs (an
        # invalid email's `value_error` has a `reason`, not an `error`).
        details = [
            InitErrorDetails(
                type=PydanticCustomError(e["type"], e["msg"]),  # no context: used as written
                loc=e["loc"],
                input=e["input"],
            )
            for e in errors
        ]
        raise ValidationError.from_exception_data(Settings.__name__, details)
    return Settings.model_validate(groups)


def load_settings(*, env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Build settings like `build_settings`; exit with one readable message if they are invalid."""
    try:
        return build_settings(env_file=env_file, **overrides)
    except ValidationError as error:
        raise SettingsError(error) from None


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, built on first use (never at import time)."""
    return load_settings()
