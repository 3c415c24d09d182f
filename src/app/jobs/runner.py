"""Run one job on a worker: claim it, run its handler with a timeout, then record the outcome.

A failure is retried with exponential backoff until the job's attempts are spent, then the
job is failed with a message its owner may read. A job still running when the worker stops
is handed back to the queue; one whose worker was killed runs again once its lease lapses.
"""

import asyncio
import contextlib
import errno
import functools
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import stamina
import structlog
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import AppError, is_database_unavailable
from app.infra.mail import Mailer
from app.jobs import claims
from app.jobs.claims import Claim
from app.jobs.exceptions import PermanentJobError
from app.observability.tracing import continued

log = structlog.get_logger(__name__)
_random = secrets.SystemRandom()
T = TypeVar("T")
# A claim step that meets a database blip (terminated connections, a failover) is tried again
# on a fresh connection; past these tries the job is left to its next dispatch or lease.
STEP_ATTEMPTS = 3
STEP_FIRST_WAIT_SECONDS = 0.2
# A write refused for want of room: the disk (or the owner's quota, or the file size limit).
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# A job handed back at shutdown is due this much later: its handler may have left work behind
# that outlives the cancellation (a thread), which lives until its process exits, and `app
# worker` or the embedded web process exits within this much of the hand-back
# (`app.shutdown.EXIT_SECONDS`).
HAND_BACK_DELAY_SECONDS = 6.0


@dataclass(frozen=True, slots=True)
class Done:
    """What a handler leaves: a small JSON result, and whether it wrote a result file."""

    result: dict[str, Any] | None = None
    has_file: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """What handlers may use; built once per process by the wiring (`app.tasks`)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    # Sessions with no transaction (each statement commits alone), for long reads: on SQLite a
    # transaction holds the one write lock from its first statement to its end.
    read_session_factory: async_sessionmaker[AsyncSession]
    mailer: Mailer
    tracer: Tracer | None
    on_outcome: Callable[[str, str], None]  # (task, outcome): the jobs_total metric


Handler = Callable[[JobContext, Claim], Awaitable[Done | None]]


def backoff_seconds(base: float, attempt: int) -> float:
    """The wait before retrying after failed attempt `attempt` (1, 2, ...), with jitter."""
    return float(base * 2 ** (attempt - 1) * _random.uniform(1.0, 1.25))


def public_error(exc: BaseException, *, timeout: float) -> str:
    """What the job's owner may read about a failure: never internals, never a secret."""
    if isinstance(exc, TimeoutError):
        return f"The job did not finish within {timeout:g} seconds."
    if isinstance(exc, AppError):
        return exc.detail
    if isinstance(exc, PermanentJobError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        # The errno's name only: the message may name a path.
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        if exc.errno in DISK_FULL:
            return f"The job could not write its result: the disk is full ({name})."
        return f"The job failed (OSError {name}); the worker's log has the details."
    return f"The job failed ({type(exc).__name__}); the worker's log has the details."


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write refused for want of room (an operator's matter, not a bug)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


async def _step(write: Callable[[], Awaitable[T]]) -> T:
    """Run one claim step (a short transaction), again while the database is unavailable."""
    async for attempt in stamina.retry_context(
        on=is_database_unavailable,
        attempts=STEP_ATTEMPTS,
        timeout=None,
        wait_initial=STEP_FIRST_WAIT_SECONDS,
        wait_jitter=STEP_FIRST_WAIT_SECONDS,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: the last attempt's error is raised")  # pragma: no cover


@contextlib.asynccontextmanager
async def _renewing(ctx: JobContext, held: Claim) -> AsyncIterator[None]:
    """Renew the claim every third of its lease while the block runs."""
    lease = ctx.settings.jobs.lease_seconds

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await claims.renew(ctx.session_factory, held, lease_seconds=lease):
                    log.warning("job_claim_lost")
                    return
            except Exception as exc:  # noqa: BLE001 - the next renewal may succeed
                log.warning("job_claim_renewal_failed", error=type(exc).__name__)

    renewal = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal


async def _failed(ctx: JobContext, held: Claim, exc: Exception) -> str:
    jobs = ctx.settings.jobs
    error = public_error(exc, timeout=jobs.task_timeout_seconds)
    final = isinstance(exc, PermanentJobError) or held.attempt >= held.max_attempts
    # A traceback for bugs only: not for a refusal, a timeout or the database being away.
    expected = isinstance(exc, AppError | PermanentJobError | TimeoutError)
    expected = expected or is_database_unavailable(exc) or is_disk_full(exc)
    log.warning(
        "job_attempt_failed",
        attempt=held.attempt,
        max_attempts=held.max_attempts,
        error=type(exc).__name__,
        retry=not final,
        exc_info=None if expected else exc,
    )
    factory = ctx.session_factory
    if final:
        await _step(lambda: claims.fail(factory, held, error=error))
        return "failed"
    delay = backoff_seconds(jobs.retry_base_seconds, held.attempt)
    await _step(lambda: claims.retry_later(factory, held, error=error, delay=delay))
    return "retried"


async def _attempt(ctx: JobContext, handlers: Mapping[str, Handler], held: Claim) -> str:
    """Run the handler once and record what happened; return the outcome's name."""
    factory = ctx.session_factory
    handler = handlers.get(held.task)
    if held.attempt > held.max_attempts or handler is None:
        # Re-claimed after its worker died on every attempt (or a task no longer known).
        error = "The job's worker stopped during every attempt." if handler else "Unknown task."
        await _step(lambda: claims.fail(factory, held, error=error))
        return "failed"
    try:
        async with _renewing(ctx, held), asyncio.timeout(ctx.settings.jobs.task_timeout_seconds):
            done = await handler(ctx, held) or Done()
    except asyncio.CancelledError:
        # Stopping: hand the job back so another worker runs it now, not after the lease.
        delay = HAND_BACK_DELAY_SECONDS
        await asyncio.shield(_step(lambda: claims.hand_back(factory, held, delay=delay)))
        log.info("job_handed_back")
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
        return await _failed(ctx, held, exc)
    succeed = functools.partial(
        claims.succeed, factory, held, result=done.result, has_file=done.has_file
    )
    if not await _step(succeed):
        log.warning("job_claim_lost")
        return "lost"
    return "succeeded"


@contextlib.contextmanager
def _span(ctx: JobContext, held: Claim) -> Iterator[None]:
    if ctx.tracer is None:
        yield
        return
    with ctx.tracer.start_as_current_span(
        f"job {held.task}",
        context=continued(held.traceparent),
        kind=SpanKind.CONSUMER,
        attributes={"job.id": str(held.job_id), "job.attempt": held.attempt},
    ):
        yield


async def run(ctx: JobContext, handlers: Mapping[str, Handler], job_id: str) -> None:
    """Run the job `job_id` if this worker can claim it; a message for a done job is dropped.

    While the database is unavailable nothing is lost: a job not claimed waits for its next
    dispatch (`JOBS_REDISPATCH_SECONDS`), one whose outcome could not be written runs again
    once its lease lapses. Either is a warning, not an error with a traceback.
    """
    lease = ctx.settings.jobs.lease_seconds
    try:
        held = await _step(
            lambda: claims.claim(ctx.session_factory, uuid.UUID(job_id), lease_seconds=lease)
        )
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("job_claim_failed", job_id=job_id, error=type(exc).__name__)
        return
    if held is None:
        log.debug("job_not_claimed", job_id=job_id)  # done, running elsewhere or not yet due
        return
    bound = {"job_id": job_id, "task": held.task, "request_id": held.request_id}
    with structlog.contextvars.bound_contextvars(**bound), _span(ctx, held):
        log.info("job_started", attempt=held.attempt)
        outcome = await _attempt_recorded(ctx, handlers, held)
        log.info("job_finished", outcome=outcome, attempt=held.attempt)
    ctx.on_outcome(held.task, outcome)


async def _attempt_recorded(ctx: JobContext, handlers: Mapping[str, Handler], held: Claim) -> str:
    try:
        return await _attempt(ctx, handlers, held)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("job_outcome_not_recorded", attempt=held.attempt, error=type(exc).__name__)
        return "unrecorded"
