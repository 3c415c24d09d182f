"""The outbox's other half: send committed, due jobs to the broker.

A request only writes its job row; this sends it, right after the request answers and, as a
backstop, on a timer (in the scheduler process, or the web process in embedded mode). A job
is marked sent before it is sent: a crash in between is repaired by sending again after
JOBS_REDISPATCH_SECONDS, and a broker that is down leaves the mark cleared, so the job goes
out on a later round once the broker is back. A job sent twice runs once (see `claims`).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.infra.jobs import JobQueue
from app.jobs.models import Job, JobStatus

log = structlog.get_logger(__name__)
BATCH = 100


def _due(now: datetime, redispatch_seconds: float) -> ColumnElement[bool]:
    stale = now - timedelta(seconds=redispatch_seconds)
    unsent = or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale)
    waiting = and_(Job.status == JobStatus.QUEUED, Job.run_after <= now)
    abandoned = and_(Job.status == JobStatus.RUNNING, Job.lease_until < now)
    return and_(or_(waiting, abandoned), unsent)


async def _mark_sent(
    session: AsyncSession, ids: Sequence[uuid.UUID] | None, redispatch: float, limit: int
) -> list[uuid.UUID]:
    """Mark the due jobs (of `ids`, or any) as sent now; return those this call marked."""
    now = utcnow()
    due = _due(now, redispatch)
    if ids is None:
        picked = await session.scalars(
            select(Job.id).where(due).order_by(Job.run_after).limit(limit)
        )
        ids = list(picked)
    if not ids:
        return []
    marked = await session.scalars(
        update(Job).where(Job.id.in_(ids), due).values(dispatched_at=now).returning(Job.id)
    )
    return list(marked)


async def _unmark(factory: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> None:
    async with factory() as session:
        await session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(dispatched_at=None)
            .execution_options(synchronize_session=False)
        )
        await session.commit()


async def dispatch(
    factory: async_sessionmaker[AsyncSession],
    queue: JobQueue,
    *,
    redispatch_seconds: float,
    ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Send due jobs (those of `ids`, or the oldest due ones) to the broker; return how many.

    Raises nothing for a broker that is down: the unsent jobs wait for a later round.
    """
    limit = queue.reserve(BATCH)  # embedded: only the slots this process has free
    if limit == 0:
        return 0
    marked: list[uuid.UUID] = []
    sent = 0
    try:
        async with factory() as session:
            picked = await _mark_sent(session, ids, redispatch_seconds, limit)
            await session.commit()
        marked = picked
        for job_id in marked:
            await queue.send(job_id)
            sent += 1
    except Exception as exc:
        if not marked:
            raise  # nothing marked: the database, not the broker, failed
        # Any broker failure: the rest go out on a later round.
        log.warning("job_dispatch_failed", error=type(exc).__name__, pending=len(marked) - sent)
        await _unmark(factory, marked[sent:])
    finally:
        queue.release(limit - sent)
    return sent
