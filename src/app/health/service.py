"""Readiness checks: each dependency answers within a timeout or counts as down."""

import asyncio
from collections.abc import Awaitable

import anyio.to_thread
import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.health.schemas import CheckStatus, ReadinessStatus
from app.infra.jobs import JobQueue
from app.observability.metrics import Metrics, render
from app.observability.sampling import Sampler

log = structlog.get_logger(__name__)


async def _probe(name: str, check: Awaitable[object], timeout: float) -> CheckStatus:
    try:
        async with asyncio.timeout(timeout):
            await check
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
        return "error"
    return "ok"


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        # No transaction: a probe must not wait for (or take) SQLite's write lock.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("SELECT 1"))


async def check_dependencies(
    *, engine: AsyncEngine, redis: Redis | None, jobs: JobQueue, timeout: float
) -> dict[str, CheckStatus]:
    """Check the database and, when configured, Redis and the job broker, concurrently."""
    names = ["db"]
    probes = [_probe("db", _select_one(engine), timeout)]
    if redis is not None:
        names.append("redis")
        probes.append(_probe("redis", redis.ping(), timeout))
    if not jobs.embedded:
        names.append("jobs_queue")
        probes.append(_probe("jobs_queue", jobs.ping(), timeout))
    results = await asyncio.gather(*probes)
    return dict(zip(names, results, strict=True))


def required_checks(settings: Settings) -> frozenset[str]:
    """The checks without which this process cannot serve.

    The database, and Redis if the rate limiter must refuse requests it cannot count
    (`RATE_LIMIT_FAIL_OPEN=false`). Every other use of Redis has an answer without it (memory,
    the database, failing open), and a job the broker cannot take waits in the jobs table for
    the dispatcher. Failing readiness for those would take every replica out of the load
    balancer at once, for a dependency they all share and can all serve without: a whole
    outage made of a degraded one.
    """
    limits = settings.rate_limit
    if settings.redis.url is not None and limits.enabled and not limits.fail_open:
        return frozenset({"db", "redis"})
    return frozenset({"db"})


def verdict(checks: dict[str, CheckStatus], required: frozenset[str]) -> ReadinessStatus:
    """`error` if a required check failed, `degraded` if only others did, else `ok`."""
    failed = {name for name, result in checks.items() if result != "ok"}
    if failed & required:
        return "error"
    return "degraded" if failed else "ok"


async def metrics_exposition(
    metrics: Metrics, sampler: Sampler | None, *, accept: str | None
) -> tuple[bytes, str]:
    """Read the sampled figures, then render every metric (in a worker thread: it reads files)."""

    def read() -> tuple[bytes, str]:
        if sampler is not None:
            sampler.sample()
        return render(metrics, accept)

    return await anyio.to_thread.run_sync(read)
