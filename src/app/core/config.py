"""Settings read from the environment and `.env`, validated once at start-up."""

import ipaddress
import json
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import EmailStr, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["local", "test", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "json", "console"]
JwtAlgorithm = Literal["HS256", "HS384", "HS512"]
AuthProvider = Literal["local", "oidc"]
MailBackend = Literal["console", "smtp"]
RateLimitStrategy = Literal["moving-window", "sliding-window-counter"]

# Long enough for HS256 (PyJWT warns below 32 bytes), and refused in production.
PLACEHOLDER_SECRET = "change-me-to-a-random-secret-of-32-or-more-characters"  # noqa: S105
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_LENGTH = {"HS256": 32, "HS384": 48, "HS512": 64}
_PLACEHOLDER_SECRETS = frozenset(
    {"", PLACEHOLDER_SECRET, "change-me", "changethis", "secret", "changeme"}
)

StrList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the service; names are the environment variables an operator sets."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        # `REDIS_URL=` as copied from .env.example means "not set", not an empty URL.
        env_ignore_empty=True,
    )

    APP_NAME: str = "Production FastAPI Backend"
    ENVIRONMENT: Environment = "local"
    DEBUG: bool = False

    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: LogFormat = "auto"

    DATABASE_URL: str = Field(
        default="sqlite+aiosqlite:///./app.db", repr=False
    )  # may hold a password
    DATABASE_POOL_SIZE: int = Field(default=5, ge=1)
    DATABASE_MAX_OVERFLOW: int = Field(default=10, ge=0)
    DATABASE_POOL_TIMEOUT: float = Field(default=30.0, gt=0)
    DATABASE_POOL_RECYCLE: int = Field(default=1800, ge=-1)
    DATABASE_STATEMENT_TIMEOUT_MS: int = Field(default=30_000, ge=0)
    DATABASE_ECHO: bool = False

    REDIS_URL: SecretStr | None = None
    REDIS_SOCKET_TIMEOUT: float = Field(default=2.0, gt=0)

    HEALTH_CHECK_TIMEOUT: float = Field(default=1.0, gt=0, le=2.5)
    GC_FREEZE_AFTER_STARTUP: bool = True

    JWT_SECRET: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    JWT_ALGORITHM: JwtAlgorithm = "HS256"
    JWT_ISSUER: str = "production-fastapi-backend"
    JWT_AUDIENCE: str = "production-fastapi-backend"
    ACCESS_TOKEN_TTL_SECONDS: int = Field(default=900, ge=30)
    REFRESH_TOKEN_TTL_SECONDS: int = Field(default=30 * 24 * 3600, ge=60)
    PASSWORD_RESET_TTL_SECONDS: int = Field(default=3600, ge=60)
    EMAIL_VERIFICATION_TTL_SECONDS: int = Field(default=24 * 3600, ge=60)
    PASSWORD_HASH_CONCURRENCY: int | None = Field(default=None, ge=1)
    PASSWORD_HASH_TIME_COST: int = Field(default=3, ge=1)
    PASSWORD_HASH_MEMORY_KIB: int = Field(default=65536, ge=1024)
    PASSWORD_HASH_PARALLELISM: int = Field(default=4, ge=1)
    LOGIN_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    LOGIN_WINDOW_SECONDS: int = Field(default=900, ge=1)

    AUTH_PROVIDER: AuthProvider = "local"
    OIDC_ISSUER: str | None = None
    OIDC_AUDIENCE: str | None = None
    OIDC_JWKS_URL: str | None = None
    OIDC_JWKS_CACHE_SECONDS: int = Field(default=300, ge=0)
    OIDC_HTTP_TIMEOUT: float = Field(default=5.0, gt=0)

    FIRST_SUPERUSER_EMAIL: EmailStr | None = None
    FIRST_SUPERUSER_PASSWORD: SecretStr | None = None

    MAIL_BACKEND: MailBackend = "console"
    MAIL_FROM: str = "no-reply@example.com"
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_STARTTLS: bool = True
    SMTP_TIMEOUT: float = Field(default=10.0, gt=0)

    DOCS_ENABLED: bool | None = None
    TRACING_ENABLED: bool = False

    CORS_ALLOW_ORIGINS: StrList = []
    CORS_ALLOW_CREDENTIALS: bool = False
    CORS_ALLOW_METHODS: StrList = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    CORS_ALLOW_HEADERS: StrList = [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "If-Match",
        "If-None-Match",
        "X-API-Key",
        "X-Request-ID",
    ]
    ALLOWED_HOSTS: StrList = ["*"]

    TRUST_PROXY_HEADERS: bool = False
    TRUSTED_PROXIES: StrList = ["127.0.0.1", "::1"]

    SECURITY_HSTS_ENABLED: bool = True
    SECURITY_CSP_ENABLED: bool = True
    SECURITY_CSP: str = "default-src 'none'; frame-ancestors 'none'"

    MAX_REQUEST_BODY_BYTES: int = Field(default=1024 * 1024, ge=1)

    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_PER_MINUTE: int = Field(default=60, ge=1)
    RATE_LIMIT_PER_HOUR: int = Field(default=1000, ge=1)
    RATE_LIMIT_BURST: int = Field(default=10, ge=0)
    RATE_LIMIT_STRATEGY: RateLimitStrategy = "moving-window"
    RATE_LIMIT_FAIL_OPEN: bool = True
    RATE_LIMIT_AUTH_PER_MINUTE: int = Field(default=10, ge=1)

    PROBLEM_TYPE_BASE_URL: str = "https://errors.example.invalid/"

    CACHE_ENABLED: bool = True
    CACHE_TTL_SECONDS: int = Field(default=60, ge=1)
    CACHE_MAX_ENTRIES: int = Field(default=10_000, ge=1)
    IDEMPOTENCY_TTL_SECONDS: int = Field(default=24 * 3600, ge=60)
    REQUIRE_IF_MATCH: bool = False

    @field_validator(
        "CORS_ALLOW_ORIGINS",
        "CORS_ALLOW_METHODS",
        "CORS_ALLOW_HEADERS",
        "ALLOWED_HOSTS",
        "TRUSTED_PROXIES",
        mode="before",
    )
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        """Accept a JSON array or a comma-separated string for list settings."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        """Refuse proxy entries that are not IP addresses or CIDR networks."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=True)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network") from exc
        return value

    @model_validator(mode="after")
    def _require_companion_settings(self) -> Self:
        """Refuse a mode whose required settings are missing, naming each one."""
        missing = []
        if self.AUTH_PROVIDER == "oidc":
            missing += [
                name
                for name in ("OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL")
                if not getattr(self, name)
            ]
        if self.MAIL_BACKEND == "smtp" and not self.SMTP_HOST:
            missing.append("SMTP_HOST")
        if bool(self.FIRST_SUPERUSER_EMAIL) != bool(self.FIRST_SUPERUSER_PASSWORD):
            missing.append("FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD (both or neither)")
        password = self.FIRST_SUPERUSER_PASSWORD
        if password and not 8 <= len(password.get_secret_value()) <= 128:  # noqa: PLR2004
            missing.append("FIRST_SUPERUSER_PASSWORD of 8 to 128 characters")
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        """Name every unsafe production setting at once, so one restart fixes them all."""
        if self.ENVIRONMENT != "production":
            return self
        problems = []
        secret = self.JWT_SECRET.get_secret_value()
        if secret.strip().lower() in _PLACEHOLDER_SECRETS:
            problems.append("JWT_SECRET is missing or a placeholder; set a random secret")
        elif len(secret.encode()) < (minimum := MIN_SECRET_LENGTH[self.JWT_ALGORITHM]):
            problems.append(
                f"JWT_SECRET is shorter than {minimum} bytes, the minimum for {self.JWT_ALGORITHM}",
            )
        if self.DEBUG:
            problems.append("DEBUG must be false in production")
        if self.CORS_ALLOW_CREDENTIALS and "*" in self.CORS_ALLOW_ORIGINS:
            problems.append(
                "CORS_ALLOW_ORIGINS must list origins, not '*', when CORS_ALLOW_CREDENTIALS is on",
            )
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    @property
    def docs_enabled(self) -> bool:
        """Whether `/docs`, `/redoc` and the OpenAPI schema are served."""
        if self.DOCS_ENABLED is not None:
            return self.DOCS_ENABLED
        return self.ENVIRONMENT != "production"


class SettingsError(SystemExit):
    """Invalid configuration: exits the process with one message that names every bad setting."""

    def __init__(self, error: ValidationError) -> None:
        lines = [f"  - {_describe(item)}" for item in error.errors()]
        super().__init__("Invalid configuration:\n" + "\n".join(lines))


def _describe(item: Any) -> str:
    location = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, exiting with a readable message if they are invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(error) from None


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, built on first use (never at import time)."""
    return load_settings()
