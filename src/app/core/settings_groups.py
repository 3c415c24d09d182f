"""Settings groups, one per concern; every field reads the flat environment variable it names.

Each group is read from the environment and `.env` on its own, so a consumer receives only the
group it needs (`create_engine(settings.database)`). `app.core.config` composes them.
"""

import ipaddress
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.quotas import Strategy

Environment = Literal["local", "test", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "json", "console"]
JwtAlgorithm = Literal["HS256", "HS384", "HS512"]
AuthProvider = Literal["local", "oidc"]
MailBackend = Literal["console", "smtp"]

# Long enough for HS256 (PyJWT warns below 32 bytes); start-up refuses it outside development.
PLACEHOLDER_SECRET = "change-me-to-a-random-secret-of-32-or-more-characters"  # noqa: S105  # nosec B105

StrList = Annotated[list[str], NoDecode]


def env(name: str, default: Any = ..., **constraints: Any) -> Any:
    """A field read from the environment variable `name` (the one an operator sets)."""
    return Field(default, validation_alias=name, **constraints)


def split_list(value: Any) -> Any:
    """Read a list setting given as a JSON array or a comma-separated string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def checked_networks(value: list[str]) -> list[str]:
    """Return `value` when every entry is an IP address or CIDR network; else raise."""
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network") from exc
    return value


# IP addresses or CIDR networks, as a JSON array or comma-separated.
NetworkList = Annotated[
    list[str], NoDecode, BeforeValidator(split_list), AfterValidator(checked_networks)
]


class SettingsGroup(BaseSettings):
    """Base of every group: flat, case-sensitive names from the environment, then `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        frozen=True,
        # `REDIS_URL=` as copied from .env.example means "not set", not an empty URL.
        env_ignore_empty=True,
    )

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Return the environment variable of every field, in declaration order."""
        return tuple(str(field.validation_alias) for field in cls.model_fields.values())


class AppSettings(SettingsGroup):
    """The service itself."""

    name: str = env("APP_NAME", "Production FastAPI Backend")
    environment: Environment = env("ENVIRONMENT", "local")
    debug: bool = env("DEBUG", False)
    gc_freeze_after_startup: bool = env("GC_FREEZE_AFTER_STARTUP", True)

    @property
    def slug(self) -> str:
        """The name as a prefix, e.g. `production-fastapi-backend`.

        Services sharing one Redis keep apart by it, and outbound requests name their sender.
        """
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


class LoggingSettings(SettingsGroup):
    """Log level and format."""

    level: LogLevel = env("LOG_LEVEL", "INFO")
    format: LogFormat = env("LOG_FORMAT", "auto")


class DatabaseSettings(SettingsGroup):
    """The database URL and its connection pool."""

    url: str = env(
        "DATABASE_URL", "sqlite+aiosqlite:///./app.db", repr=False
    )  # may hold a password
    pool_size: int = env("DATABASE_POOL_SIZE", 5, ge=1)
    max_overflow: int = env("DATABASE_MAX_OVERFLOW", 10, ge=0)
    # Below REQUEST_TIMEOUT_SECONDS: a request waiting on the database gets the specific
    # 503 `database_unavailable` before the request deadline would stop it.
    pool_timeout: float = env("DATABASE_POOL_TIMEOUT", 10.0, gt=0)
    pool_recycle: int = env("DATABASE_POOL_RECYCLE", 1800, ge=-1)
    statement_timeout_ms: int = env("DATABASE_STATEMENT_TIMEOUT_MS", 20_000, ge=0)
    connect_timeout: float = env("DATABASE_CONNECT_TIMEOUT", 5.0, gt=0)
    # The client's own bound on every round trip (a statement, COMMIT, ROLLBACK, a close): a
    # database that stopped answering (a hung host, a network partition) sends no error, so the
    # server's statement timeout never fires. Above it, so a slow statement is the server's.
    command_timeout: float = env("DATABASE_COMMAND_TIMEOUT", 25.0, ge=0)
    # A connection idle longer than this is pinged before use (a busy one is not: the ping
    # would cost a round trip on every request); 0 pings on every checkout.
    pool_ping_after_idle: float = env("DATABASE_POOL_PING_AFTER_IDLE", 10.0, ge=0)
    echo: bool = env("DATABASE_ECHO", False)


class RedisSettings(SettingsGroup):
    """Redis, shared by the rate limiter, cache, login throttle and idempotency locks."""

    url: SecretStr | None = env("REDIS_URL", None)
    # Short: every use of Redis here has an answer without it (memory, the database, fail
    # open), and a hung Redis must cost a request a fraction of a second, not seconds.
    socket_timeout: float = env("REDIS_SOCKET_TIMEOUT", 0.25, gt=0)
    max_connections: int = env("REDIS_MAX_CONNECTIONS", 50, ge=1)
    pool_timeout: float = env("REDIS_POOL_TIMEOUT", 0.25, gt=0)
    breaker_failures: int = env("REDIS_BREAKER_FAILURES", 3, ge=1)
    breaker_cool_down_seconds: float = env("REDIS_BREAKER_COOL_DOWN_SECONDS", 2.0, gt=0)


class AuthSettings(SettingsGroup):
    """Who owns identities, access tokens, password hashing and login throttling."""

    provider: AuthProvider = env("AUTH_PROVIDER", "local")
    jwt_secret: SecretStr = env("JWT_SECRET", SecretStr(PLACEHOLDER_SECRET))
    jwt_algorithm: JwtAlgorithm = env("JWT_ALGORITHM", "HS256")
    jwt_issuer: str = env("JWT_ISSUER", "production-fastapi-backend")
    jwt_audience: str = env("JWT_AUDIENCE", "production-fastapi-backend")
    access_token_ttl_seconds: int = env("ACCESS_TOKEN_TTL_SECONDS", 900, ge=30)
    refresh_token_ttl_seconds: int = env("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, ge=60)
    password_reset_ttl_seconds: int = env("PASSWORD_RESET_TTL_SECONDS", 3600, ge=60)
    email_verification_ttl_seconds: int = env("EMAIL_VERIFICATION_TTL_SECONDS", 24 * 3600, ge=60)
    password_hash_concurrency: int | None = env("PASSWORD_HASH_CONCURRENCY", None, ge=1)
    password_hash_time_cost: int = env("PASSWORD_HASH_TIME_COST", 3, ge=1)
    password_hash_memory_kib: int = env("PASSWORD_HASH_MEMORY_KIB", 65536, ge=1024)
    password_hash_parallelism: int = env("PASSWORD_HASH_PARALLELISM", 4, ge=1)
    login_max_attempts: int = env("LOGIN_MAX_ATTEMPTS", 5, ge=1)
    login_window_seconds: int = env("LOGIN_WINDOW_SECONDS", 900, ge=1)
    login_max_delay_seconds: int = env("LOGIN_MAX_DELAY_SECONDS", 30, ge=1)
    login_known_client_days: int = env("LOGIN_KNOWN_CLIENT_DAYS", 30, ge=0, le=3650)
    fresh_login_seconds: int = env("FRESH_LOGIN_SECONDS", 300, ge=0)
    api_key_default_ttl_days: int = env("API_KEY_DEFAULT_TTL_DAYS", 90, ge=1)
    api_key_max_ttl_days: int = env("API_KEY_MAX_TTL_DAYS", 365, ge=1)


class OidcSettings(SettingsGroup):
    """The external identity provider, used when `AUTH_PROVIDER=oidc`."""

    issuer: str | None = env("OIDC_ISSUER", None)
    audience: str | None = env("OIDC_AUDIENCE", None)
    jwks_url: str | None = env("OIDC_JWKS_URL", None)
    jwks_cache_seconds: int = env("OIDC_JWKS_CACHE_SECONDS", 300, ge=0)
    http_timeout: float = env("OIDC_HTTP_TIMEOUT", 5.0, gt=0)


class SuperuserSettings(SettingsGroup):
    """The first superuser, created at start-up when absent (both or neither)."""

    email: EmailStr | None = env("FIRST_SUPERUSER_EMAIL", None)
    password: SecretStr | None = env("FIRST_SUPERUSER_PASSWORD", None)


class MailSettings(SettingsGroup):
    """Outgoing mail."""

    backend: MailBackend = env("MAIL_BACKEND", "console")
    sender: str = env("MAIL_FROM", "no-reply@example.com")
    smtp_host: str | None = env("SMTP_HOST", None)
    smtp_port: int = env("SMTP_PORT", 587, ge=1, le=65535)
    smtp_username: str | None = env("SMTP_USERNAME", None)
    smtp_password: SecretStr | None = env("SMTP_PASSWORD", None)
    smtp_starttls: bool = env("SMTP_STARTTLS", True)
    smtp_timeout: float = env("SMTP_TIMEOUT", 10.0, gt=0)


_DEFAULT_CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-API-Key",
    "X-Request-ID",
]


class HttpSettings(SettingsGroup):
    """The HTTP edge: hosts, CORS, proxies, security headers and body limits."""

    allowed_hosts: StrList = env("ALLOWED_HOSTS", ["*"])
    cors_allow_origins: StrList = env("CORS_ALLOW_ORIGINS", [])
    cors_allow_credentials: bool = env("CORS_ALLOW_CREDENTIALS", False)
    cors_allow_methods: StrList = env(
        "CORS_ALLOW_METHODS", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    cors_allow_headers: StrList = env("CORS_ALLOW_HEADERS", _DEFAULT_CORS_HEADERS)
    trust_proxy_headers: bool = env("TRUST_PROXY_HEADERS", False)
    trusted_proxies: StrList = env("TRUSTED_PROXIES", ["127.0.0.1", "::1"])
    hsts_enabled: bool = env("SECURITY_HSTS_ENABLED", True)
    csp_enabled: bool = env("SECURITY_CSP_ENABLED", True)
    csp: str = env("SECURITY_CSP", "default-src 'none'; frame-ancestors 'none'")
    max_request_body_bytes: int = env("MAX_REQUEST_BODY_BYTES", 1024 * 1024, ge=1)

    @field_validator(
        "allowed_hosts",
        "cors_allow_origins",
        "cors_allow_methods",
        "cors_allow_headers",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        """Accept a JSON array or a comma-separated string for list settings."""
        return split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        """Refuse proxy entries that are not IP addresses or CIDR networks."""
        return checked_networks(value)


class RateLimitSettings(SettingsGroup):
    """Per-client request quotas."""

    enabled: bool = env("RATE_LIMIT_ENABLED", True)
    per_minute: int = env("RATE_LIMIT_PER_MINUTE", 60, ge=1)
    per_hour: int = env("RATE_LIMIT_PER_HOUR", 1000, ge=1)
    burst: int = env("RATE_LIMIT_BURST", 10, ge=0)
    strategy: Strategy = env("RATE_LIMIT_STRATEGY", "moving-window")
    fail_open: bool = env("RATE_LIMIT_FAIL_OPEN", True)
    auth_per_minute: int = env("RATE_LIMIT_AUTH_PER_MINUTE", 10, ge=1)


class CacheSettings(SettingsGroup):
    """The read-through cache."""

    enabled: bool = env("CACHE_ENABLED", True)
    ttl_seconds: int = env("CACHE_TTL_SECONDS", 60, ge=1)
    max_entries: int = env("CACHE_MAX_ENTRIES", 10_000, ge=1)


class ApiSettings(SettingsGroup):
    """How the API behaves: its docs, error URIs, conditional requests and idempotency."""

    docs: bool | None = env("DOCS_ENABLED", None)
    problem_type_base_url: str = env("PROBLEM_TYPE_BASE_URL", "https://errors.example.invalid/")
    require_if_match: bool = env("REQUIRE_IF_MATCH", False)
    idempotency_ttl_seconds: int = env("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, ge=60)
