"""Start-up and shutdown of one process: bootstrap, freeze the start-up heap, close clients."""

import asyncio
import contextlib
import functools
import gc
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from app.core.backoff import Backoff
from app.core.errors import is_database_unavailable
from app.db.session import safe_url
from app.deps import resources_of
from app.resources import Resources, close_resources
from app.shutdown import EXIT_SECONDS, exit_by, install_graceful_shutdown, uvicorn_server
from app.tasks import pump
from app.users import service as users_service

log = structlog.get_logger(__name__)

BOOTSTRAP_FIRST_RETRY_SECONDS = 0.5
BOOTSTRAP_MAX_RETRY_SECONDS = 10.0


async def _bootstrap_superuser(resources: Resources) -> None:
    first = resources.settings.first_superuser
    if first.email is None or first.password is None:
        return
    await users_service.ensure_superuser(
        session_factory=resources.session_factory,
        hasher=resources.password_hasher,
        email=first.email,
        password=first.password.get_secret_value(),
    )


@asynccontextmanager
async def _running(work: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    """Run `work` (if any) in a task of its own while the block runs; cancel it after."""
    if work is None:
        yield
        return
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _bootstrap(resources: Resources) -> bool:
    """Run the start-up work that needs the database; False while the database is unavailable."""
    try:
        await _bootstrap_superuser(resources)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("startup_waiting_for_database", error=type(exc).__name__)
        return False
    resources.lifecycle.bootstrapped = True
    return True


async def _bootstrap_when_possible(resources: Resources) -> None:
    """Retry the start-up work until the database answers (readiness says `starting` meanwhile)."""
    backoff = Backoff(BOOTSTRAP_FIRST_RETRY_SECONDS, BOOTSTRAP_MAX_RETRY_SECONDS)
    try:
        while True:
            await asyncio.sleep(backoff.next_wait())
            if await _bootstrap(resources):
                log.info("startup_completed")
                return
    except Exception:
        # A bug, not an outage: readiness stays 503 `starting`, which the deploy will show.
        log.exception("startup_failed")


@asynccontextmanager
async def _bootstrapped(resources: Resources) -> AsyncIterator[None]:
    """Bootstrap now, or, with the database down, in the background while the app serves.

    A worker must not die because the database is down when it starts: it would be
    restarted in a loop. It serves instead (503 `database_unavailable`, readiness 503) and
    bootstraps as soon as the database answers.
    """
    retrying = None if await _bootstrap(resources) else _bootstrap_when_possible(resources)
    async with _running(retrying):
        yield


@asynccontextmanager
async def _sampling_metrics(resources: Resources) -> AsyncIterator[None]:
    """With several workers, each reads its pool and GC figures on a timer (see sampling.py)."""
    metrics, sampler = resources.metrics, resources.metrics_sampler
    shared = metrics is not None and metrics.multiproc_dir is not None
    async with _running(sampler.run() if shared and sampler is not None else None):
        yield


@asynccontextmanager
async def _embedded_jobs(resources: Resources, *, own_process: bool) -> AsyncIterator[None]:
    """Without a broker, this process sends and runs the jobs (and fires the schedules).

    On the way out, running jobs get JOBS_SHUTDOWN_GRACE_SECONDS; the rest are cancelled and
    go back to the queue. A server process of its own (`own_process`) that had to cancel jobs
    then exits within EXIT_SECONDS, whatever still runs (`web_exit_forced`); an app sharing
    its process (a test's) is never ended. Eager mode (tests) runs each job inline after its
    request, with no pump.
    """
    jobs = resources.settings.jobs
    loop = pump(resources).run() if resources.jobs.embedded and not jobs.eager else None
    bound = functools.partial(exit_by, EXIT_SECONDS, "web_exit_forced") if own_process else None
    try:
        async with _running(loop):
            yield
    finally:
        await resources.jobs.stop_running(jobs.shutdown_grace_seconds, on_cancel=bound)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run start-up work with the app's resources, and close them when the process stops."""
    resources = resources_of(app)
    settings = resources.settings
    server = settings.server
    served_by_uvicorn = uvicorn_server() is not None  # asked before the hook replaces its handler
    restore_signals = install_graceful_shutdown(
        resources.lifecycle,
        drain_seconds=server.shutdown_drain_seconds,
        grace_seconds=server.shutdown_grace_seconds,
    )
    try:
        async with _bootstrapped(resources):
            log.info(
                "startup",
                environment=settings.app.environment,
                database=safe_url(settings.database.url),
                redis=resources.redis is not None,
                auth_provider=settings.auth.provider,
            )
            # Objects made at start-up live for the whole process; freezing them keeps the
            # garbage collector from scanning them on every collection (p99 fell ~5x).
            if settings.app.gc_freeze_after_startup:
                gc.collect()
                gc.freeze()
            try:
                async with (
                    _sampling_metrics(resources),
                    _embedded_jobs(resources, own_process=served_by_uvicorn),
                ):
                    yield
            finally:
                if settings.app.gc_freeze_after_startup:
                    gc.unfreeze()
                log.info("shutdown")
    finally:
        restore_signals()
        await close_resources(resources_of(app))
