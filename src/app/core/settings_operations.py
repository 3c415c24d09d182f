"""Settings groups for running the service, and for what it reports.

A worker's limits and shutdown, its outbound HTTP client, country blocking, readiness checks,
tracing, metrics and security alerts. Split from `settings_groups` by theme (that module holds
the shared helpers); `app.core.config` composes the groups of both.
"""

import re
from typing import Any, Literal

from pydantic import SecretStr, field_validator

from app.core.settings_groups import NetworkList, SettingsGroup, StrList, env, split_list

GeoIpUnknown = Literal["allow", "block"]


class ServerSettings(SettingsGroup):
    """How much one worker takes on, how long a request may run, and how the process stops."""

    request_timeout_seconds: float = env("REQUEST_TIMEOUT_SECONDS", 30.0, gt=0)
    request_body_timeout_seconds: float = env("REQUEST_BODY_TIMEOUT_SECONDS", 20.0, gt=0)
    # Enforced by `app serve` (`app.server_limits`): uvicorn itself bounds neither.
    request_header_timeout_seconds: float = env("REQUEST_HEADER_TIMEOUT_SECONDS", 10.0, gt=0)
    max_request_header_bytes: int = env("MAX_REQUEST_HEADER_BYTES", 32768, ge=1024)
    max_concurrent_requests: int = env("MAX_CONCURRENT_REQUESTS", 100, ge=0)
    request_queue_size: int = env("REQUEST_QUEUE_SIZE", 100, ge=0)
    request_queue_timeout_seconds: float = env("REQUEST_QUEUE_TIMEOUT_SECONDS", 1.0, ge=0)
    shutdown_drain_seconds: float = env("SHUTDOWN_DRAIN_SECONDS", 5.0, ge=0)
    shutdown_grace_seconds: int = env("SHUTDOWN_GRACE_SECONDS", 30, ge=0)


class OutboundSettings(SettingsGroup):
    """The outbound HTTP client: timeouts, retries and the per-host circuit breaker."""

    connect_timeout: float = env("HTTP_CONNECT_TIMEOUT", 3.0, gt=0)
    read_timeout: float = env("HTTP_READ_TIMEOUT", 10.0, gt=0)
    write_timeout: float = env("HTTP_WRITE_TIMEOUT", 10.0, gt=0)
    pool_timeout: float = env("HTTP_POOL_TIMEOUT", 2.0, gt=0)
    # A whole call: its tries, the waits between them and reading the answer's body.
    total_timeout: float = env("HTTP_TOTAL_TIMEOUT", 30.0, gt=0)
    # Retries after the first try, for idempotent methods only; 0 turns them off.
    retries: int = env("HTTP_RETRIES", 2, ge=0, le=10)
    breaker_failures: int = env("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5, ge=1)
    breaker_reset_seconds: float = env("CIRCUIT_BREAKER_RESET_SECONDS", 60.0, gt=0)


class GeoIpSettings(SettingsGroup):
    """Country blocking from a MaxMind DB file; off while no file is set."""

    database_path: str | None = env("GEOIP_DATABASE_PATH", None)
    allowed_countries: StrList = env("GEOIP_ALLOWED_COUNTRIES", [])
    blocked_countries: StrList = env("GEOIP_BLOCKED_COUNTRIES", [])
    unknown: GeoIpUnknown = env("GEOIP_UNKNOWN", "allow")

    @field_validator("allowed_countries", "blocked_countries", mode="before")
    @classmethod
    def _parse_countries(cls, value: Any) -> Any:
        """Accept a JSON array or a comma-separated string; codes are upper-cased."""
        if isinstance(value, str):
            value = split_list(value)
        return [str(code).strip().upper() for code in value] if isinstance(value, list) else value

    @field_validator("allowed_countries", "blocked_countries")
    @classmethod
    def _country_codes(cls, value: list[str]) -> list[str]:
        """Refuse anything but ISO 3166 alpha-2 codes (`DE`, `US`)."""
        for code in value:
            if not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"{code!r} is not a two-letter ISO 3166 country code")
        return value


# OpenTelemetry's names for its samplers (`OTEL_TRACES_SAMPLER`).
TracesSampler = Literal["always_on", "always_off", "traceidratio", "parentbased_always_on",
                        "parentbased_always_off", "parentbased_traceidratio"]  # fmt: skip


class ObservabilitySettings(SettingsGroup):
    """Readiness checks, slow statement warnings and OpenTelemetry tracing.

    The `OTEL_*` names are OpenTelemetry's own; these few are read here (so `.env` works too),
    the SDK reads the others from the process environment (docs/observability.md).
    """

    health_check_timeout: float = env("HEALTH_CHECK_TIMEOUT", 1.0, gt=0, le=2.5)
    db_slow_query_ms: int = env("DB_SLOW_QUERY_MS", 500, ge=0)
    otlp_endpoint: str | None = env("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    traces_exporter: Literal["otlp", "none"] = env("OTEL_TRACES_EXPORTER", "otlp")
    traces_sampler: TracesSampler = env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    traces_sampler_arg: float = env("OTEL_TRACES_SAMPLER_ARG", 1.0, ge=0, le=1)
    service_name: str | None = env("OTEL_SERVICE_NAME", None)

    @property
    def tracing_enabled(self) -> bool:
        """Whether requests are traced: only when an OTLP endpoint is set."""
        return bool(self.otlp_endpoint)


class MetricsSettings(SettingsGroup):
    """Prometheus metrics at `GET /metrics`, and who may read them."""

    enabled: bool = env("METRICS_ENABLED", True)
    allowed_ips: NetworkList = env("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
    token: SecretStr | None = env("METRICS_TOKEN", None)
    # prometheus-client reads it from the process environment when imported; this copy lets
    # start-up refuse a value set only in `.env`, which the library would never see.
    multiproc_dir: str | None = env("PROMETHEUS_MULTIPROC_DIR", None)


class AlertSettings(SettingsGroup):
    """Security alerts: thresholds per minute (0: off) and where to post them."""

    auth_failures_per_minute: int = env("ALERT_AUTH_FAILURES_PER_MINUTE", 100, ge=0)
    rate_limited_per_minute: int = env("ALERT_RATE_LIMITED_PER_MINUTE", 600, ge=0)
    webhook_url: SecretStr | None = env("ALERT_WEBHOOK_URL", None)  # may hold a token
