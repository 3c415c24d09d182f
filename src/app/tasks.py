"""The jobs this service runs, and their wiring: handlers by task name, schedules, the pump.

Adding a job: write its handler beside its domain (`async def handler(ctx, held) -> Done`),
name it in `HANDLERS`, and enqueue it from a route with `JobSenderDep.enqueue`.
"""

import functools
from collections.abc import Mapping

import anyio.to_thread
import structlog

from app.auth import jobs as auth_jobs
from app.auth import purge as auth_purge
from app.db.base import utcnow
from app.idempotency import service as idempotency_service
from app.jobs import mail, results, runner
from app.jobs import service as jobs_service
from app.jobs.claims import Claim
from app.jobs.runner import Done, Handler, JobContext
from app.jobs.scheduler import Pump, Schedule
from app.resources import Resources
from app.users import export

log = structlog.get_logger(__name__)

PURGE_EXPIRED = "purge_expired"


async def purge_expired(ctx: JobContext, _: Claim) -> Done:
    """Delete expired tokens, old login failures and known clients, keys and job results."""
    settings, now = ctx.settings, utcnow()
    directory = await anyio.to_thread.run_sync(results.results_dir, settings.jobs.results_dir)
    async with ctx.session_factory() as session:
        counts = await auth_purge.purge_expired(
            session=session,
            now=now,
            login_window_seconds=settings.auth.login_window_seconds,
            login_known_client_days=settings.auth.login_known_client_days,
        )
        counts["idempotency_keys"] = await idempotency_service.purge_expired(
            session=session, now=now
        )
        expired = await jobs_service.purge_finished(
            session=session, now=now, ttl_seconds=settings.jobs.result_ttl_seconds
        )
        await session.commit()
        keep = await jobs_service.ids_with_files(session=session)
    await results.remove(directory, expired)
    # Files of no job (a crashed write, a job purged elsewhere) once no job could still write.
    grace = settings.jobs.task_timeout_seconds + settings.jobs.lease_seconds
    counts["result_files"] = len(expired) + await results.sweep(
        directory, keep=keep, older_than_seconds=grace
    )
    log.info("purged_expired", **counts)
    return Done(result=counts)


HANDLERS: Mapping[str, Handler] = {
    mail.SEND_EMAIL: mail.send_email,
    auth_jobs.SEND_PASSWORD_RESET: auth_jobs.send_password_reset,
    export.EXPORT_USER_DATA: export.export_user_data,
    PURGE_EXPIRED: purge_expired,
}


def schedules(resources: Resources) -> list[Schedule]:
    """The cron schedules: the purge, at `JOBS_PURGE_CRON` (hourly by default)."""
    jobs = resources.settings.jobs
    return [Schedule(jobs.purge_cron, PURGE_EXPIRED, max_attempts=jobs.max_retries + 1)]


def job_context(resources: Resources) -> JobContext:
    """What handlers run with, from this process's resources."""
    provider = resources.tracer_provider
    return JobContext(
        settings=resources.settings,
        session_factory=resources.session_factory,
        read_session_factory=resources.read_session_factory,
        mailer=resources.mailer,
        tracer=provider.get_tracer("app.jobs") if provider is not None else None,
        on_outcome=resources.events.job_outcome,
    )


def bind(resources: Resources) -> None:
    """Make this process run the jobs its broker delivers, with these resources."""
    resources.jobs.consume_with(functools.partial(runner.run, job_context(resources), HANDLERS))


def pump(resources: Resources) -> Pump:
    """The loop that fires schedules and sends due jobs (scheduler, or embedded web process)."""
    jobs = resources.settings.jobs
    return Pump(
        factory=resources.session_factory,
        queue=resources.jobs,
        schedules=schedules(resources),
        interval=jobs.dispatch_interval_seconds,
        redispatch_seconds=jobs.redispatch_seconds,
    )
