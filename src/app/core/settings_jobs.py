"""Settings of background jobs: the broker, retries, timeouts, results and the schedule."""

from datetime import UTC, datetime

from cronsim import CronSim, CronSimError
from pydantic import SecretStr, field_validator

from app.core.settings_groups import SettingsGroup, env


class JobsSettings(SettingsGroup):
    """Background jobs: a Redis broker when one is set, else tasks run in the web process."""

    # None: REDIS_URL's server is the broker; neither set: tasks run in-process (embedded).
    broker_url: SecretStr | None = env("JOBS_BROKER_URL", None)
    concurrency: int = env("JOBS_CONCURRENCY", 10, ge=1, le=1000)
    max_retries: int = env("JOBS_MAX_RETRIES", 3, ge=0, le=100)
    retry_base_seconds: float = env("JOBS_RETRY_BASE_SECONDS", 5.0, gt=0)
    task_timeout_seconds: float = env("JOBS_TASK_TIMEOUT_SECONDS", 300.0, gt=0)
    # A running job's claim lasts this long unless its worker renews it (every third of it);
    # a killed worker's job runs again elsewhere once its claim has lapsed.
    lease_seconds: float = env("JOBS_LEASE_SECONDS", 60.0, ge=1)
    shutdown_grace_seconds: float = env("JOBS_SHUTDOWN_GRACE_SECONDS", 30.0, ge=0)
    result_ttl_seconds: int = env("JOBS_RESULT_TTL_SECONDS", 7 * 24 * 3600, ge=60)
    results_dir: str = env("JOBS_RESULTS_DIR", "./job-results")
    dispatch_interval_seconds: float = env("JOBS_DISPATCH_INTERVAL_SECONDS", 1.0, gt=0)
    # A job sent this long ago and still queued is sent again (its message may be lost).
    redispatch_seconds: float = env("JOBS_REDISPATCH_SECONDS", 300.0, ge=1)
    purge_cron: str = env("JOBS_PURGE_CRON", "0 * * * *")
    # Embedded mode only: run each job inline once its request has answered (tests).
    eager: bool = env("JOBS_EAGER", False)

    @field_validator("purge_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        """Refuse a cron expression that cronsim cannot read."""
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as exc:
            raise ValueError(f"{value!r} is not a cron expression: {exc}") from exc
        return value
