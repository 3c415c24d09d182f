"""Jobs as the API and the requests see them: create (in the caller's transaction), read, purge."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.locks import lock_for_transaction
from app.jobs.models import Job, JobStatus
from app.observability.tracing import current_traceparent

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def _new(
    task: str,
    args: dict[str, Any],
    max_attempts: int,
    owner_id: uuid.UUID | None,
    read_scopes: Iterable[str] = (),
) -> Job:
    # The request id and trace context of the caller travel with the job.
    return Job(
        task=task,
        args=args,
        max_attempts=max_attempts,
        owner_id=owner_id,
        read_scopes=sorted(set(read_scopes)),
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        traceparent=current_traceparent(),
    )


async def create(
    *,
    session: AsyncSession,
    task: str,
    args: dict[str, Any],
    max_attempts: int,
    owner_id: uuid.UUID | None = None,
    read_scopes: Iterable[str] = (),
) -> Job:
    """Add a job to the caller's transaction: it exists only if that transaction commits.

    `read_scopes`: what a credential must hold to read the job's result and file.
    """
    job = _new(task, args, max_attempts, owner_id, read_scopes)
    session.add(job)
    await session.flush()
    return job


async def create_once(
    *,
    session: AsyncSession,
    task: str,
    args: dict[str, Any],
    max_attempts: int,
    dedupe_key: str,
) -> Job | None:
    """Add a job unless one with `dedupe_key` exists (then None; the transaction goes on)."""
    job = _new(task, args, max_attempts, None)
    job.dedupe_key = dedupe_key
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return None  # asked for before: the savepoint undid only this row
    return job


async def get(*, session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """Return the job, or None."""
    return await session.get(Job, job_id)


async def active(*, session: AsyncSession, owner_id: uuid.UUID, task: str) -> Job | None:
    """Return the owner's queued or running job of `task`, if there is one."""
    return await session.scalar(
        select(Job)
        .where(
            Job.owner_id == owner_id,
            Job.task == task,
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
        )
        .limit(1)
    )


async def hold_active(*, session: AsyncSession, owner_id: uuid.UUID, task: str) -> Job | None:
    """Take the owner's turn at `task` for this transaction; return its queued or running job.

    For a job the owner has one of at a time: requests that would each start one when none is
    active take turns, and the later ones find the first's job (else each made its own).
    """
    await lock_for_transaction(session, f"jobs:{task}:{owner_id}")
    return await active(session=session, owner_id=owner_id, task=task)


async def list_jobs(
    *,
    session: AsyncSession,
    owner_id: uuid.UUID | None,
    status: JobStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Job], int]:
    """Return a page of jobs, newest first, and how many match: one owner's, or all (None)."""
    query = select(Job)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def purge_finished(
    *, session: AsyncSession, now: datetime, ttl_seconds: int
) -> list[uuid.UUID]:
    """Delete jobs finished more than `ttl_seconds` ago; return the ids of those with a file."""
    cutoff = now - timedelta(seconds=ttl_seconds)
    expired = (Job.status.in_(FINISHED)) & (Job.finished_at <= cutoff)
    with_files = await session.scalars(select(Job.id).where(expired, Job.has_file.is_(True)))
    ids = list(with_files)
    await session.execute(delete(Job).where(expired).execution_options(synchronize_session=False))
    return ids


async def owned_ids_with_files(*, session: AsyncSession, owner_id: uuid.UUID) -> list[uuid.UUID]:
    """Return the ids of the owner's jobs that have a result file."""
    query = select(Job.id).where(Job.owner_id == owner_id, Job.has_file.is_(True))
    return list(await session.scalars(query))


async def ids_with_files(*, session: AsyncSession) -> set[uuid.UUID]:
    """Return the ids of every job that has a result file."""
    return set(await session.scalars(select(Job.id).where(Job.has_file.is_(True))))


async def drop_older_files(
    *, session: AsyncSession, owner_id: uuid.UUID, task: str, keep: uuid.UUID
) -> list[uuid.UUID]:
    """Mark the owner's other `task` jobs as having no file; return their ids (to delete)."""
    older = await session.scalars(
        update(Job)
        .where(Job.owner_id == owner_id, Job.task == task, Job.id != keep, Job.has_file.is_(True))
        .values(has_file=False)
        .returning(Job.id)
    )
    return list(older)
