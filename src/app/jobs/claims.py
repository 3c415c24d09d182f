"""A job's life on a worker: claim, renew, then succeed, retry, fail or hand back.

Each step is one conditional UPDATE in a short transaction of its own, so it holds on SQLite
and PostgreSQL alike: a claim succeeds for one worker only, and a worker whose claim lapsed
(it froze, and another took the job over) can no longer change the job.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.jobs.models import Job, JobStatus

Factory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this worker holds until `lease_seconds` after its last renewal."""

    job_id: uuid.UUID
    token: uuid.UUID
    task: str
    args: dict[str, Any]
    owner_id: uuid.UUID | None
    attempt: int
    max_attempts: int
    request_id: str | None
    traceparent: str | None


def _claimable(now: datetime) -> Any:
    waiting = and_(Job.status == JobStatus.QUEUED, Job.run_after <= now)
    abandoned = and_(Job.status == JobStatus.RUNNING, Job.lease_until < now)
    return or_(waiting, abandoned)


async def claim(factory: Factory, job_id: uuid.UUID, *, lease_seconds: float) -> Claim | None:
    """Take the job if it waits (and is due) or its last worker's lease lapsed; else None."""
    now, token = utcnow(), uuid.uuid4()
    statement = (
        update(Job)
        .where(Job.id == job_id, _claimable(now))
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            started_at=now,
            lease_until=now + timedelta(seconds=lease_seconds),
            claim_token=token,
            dispatched_at=None,
        )
        .returning(
            Job.task, Job.args, Job.owner_id, Job.attempts, Job.max_attempts,
            Job.request_id, Job.traceparent,
        )
    )  # fmt: skip
    async with factory() as session:
        row = (await session.execute(statement)).one_or_none()
        await session.commit()
    if row is None:
        return None
    return Claim(job_id, token, *row)


async def _settle(factory: Factory, held: Claim, **values: Any) -> bool:
    """Change the job if this worker still holds it; False when its claim was taken over."""
    async with factory() as session:
        result = await session.execute(
            update(Job)
            .where(Job.id == held.job_id, Job.claim_token == held.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def renew(factory: Factory, held: Claim, *, lease_seconds: float) -> bool:
    """Extend the claim; False when another worker has taken the job over."""
    until = utcnow() + timedelta(seconds=lease_seconds)
    return await _settle(factory, held, lease_until=until)


async def succeed(
    factory: Factory, held: Claim, *, result: dict[str, Any] | None, has_file: bool
) -> bool:
    """Record the job's result; its arguments are dropped (they may carry a sealed mail)."""
    return await _settle(
        factory, held, status=JobStatus.SUCCEEDED, result=result, has_file=has_file,
        error=None, args={}, finished_at=utcnow(), lease_until=None, claim_token=None,
    )  # fmt: skip


async def fail(factory: Factory, held: Claim, *, error: str) -> bool:
    """Mark the job failed for good."""
    return await _settle(
        factory, held, status=JobStatus.FAILED, error=error, args={},
        finished_at=utcnow(), lease_until=None, claim_token=None,
    )  # fmt: skip


async def retry_later(factory: Factory, held: Claim, *, error: str, delay: float) -> bool:
    """Put the job back in the queue, due after `delay` seconds; the dispatcher sends it then."""
    return await _settle(
        factory, held, status=JobStatus.QUEUED, error=error,
        run_after=utcnow() + timedelta(seconds=delay), lease_until=None, claim_token=None,
    )  # fmt: skip


async def hand_back(factory: Factory, held: Claim, *, delay: float = 0.0) -> bool:
    """Return an unfinished job to the queue, due after `delay` seconds, this attempt uncounted."""
    return await _settle(
        factory, held, status=JobStatus.QUEUED, attempts=Job.attempts - 1,
        run_after=utcnow() + timedelta(seconds=delay), lease_until=None, claim_token=None,
    )  # fmt: skip
