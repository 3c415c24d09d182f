"""Dependencies of the jobs domain: enqueueing from a request, and loading a visible job."""

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.deps import Principal, RequireScopes
from app.auth.scopes import ALL_SCOPES, Scope
from app.core.settings_jobs import JobsSettings
from app.core.types import Uuid
from app.deps import JobQueueDep, SessionDep, SessionFactoryDep, SettingsDep
from app.infra.jobs import JobQueue
from app.jobs import dispatcher
from app.jobs import service as jobs_service
from app.jobs.exceptions import JobNotFound
from app.jobs.models import Job

log = structlog.get_logger(__name__)

JobsReader = Annotated[Principal, Depends(RequireScopes(Scope.JOBS_READ))]


class JobSender:
    """The jobs one request asks for: written in its transaction, sent once it committed."""

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], queue: JobQueue, settings: JobsSettings
    ) -> None:
        self._factory = factory
        self._queue = queue
        self._settings = settings
        self.job_ids: list[uuid.UUID] = []

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        task: str,
        args: dict[str, Any],
        owner_id: uuid.UUID | None = None,
        read_scopes: Iterable[Scope] = (),
    ) -> Job:
        """Add a job to the request's transaction; it is sent once that commits.

        A job whose result holds data of other domains names the scopes that reading that
        data takes (`read_scopes`): a credential without them sees the job's status only.
        """
        job = await jobs_service.create(
            session=session,
            task=task,
            args=args,
            max_attempts=self._settings.max_retries + 1,
            owner_id=owner_id,
            read_scopes=read_scopes,
        )
        self.job_ids.append(job.id)
        return job

    async def send(self) -> None:
        """Send the request's jobs; a broker that is down leaves them to the dispatcher."""
        if not self.job_ids:
            return
        try:
            await dispatcher.dispatch(
                self._factory,
                self._queue,
                redispatch_seconds=self._settings.redispatch_seconds,
                ids=self.job_ids,
            )
        except Exception as exc:  # noqa: BLE001 - the jobs are committed: the pump sends them
            log.warning("job_send_deferred", error=type(exc).__name__)


async def get_job_sender(
    factory: SessionFactoryDep, queue: JobQueueDep, settings: SettingsDep
) -> AsyncIterator[JobSender]:
    """Yield the request's job sender; its jobs go out after the response is sent.

    Request scope: this runs after the session dependency committed, and not at all when
    the request failed (the exception is raised here instead), so a rolled-back job, which
    has no row, is never sent.
    """
    sender = JobSender(factory, queue, settings.jobs)
    yield sender
    await sender.send()


JobSenderDep = Annotated[JobSender, Depends(get_job_sender)]


@dataclass(frozen=True, slots=True)
class VisibleJob:
    """A job the caller may see, and whether it may read the job's result."""

    job: Job
    result_readable: bool


def result_scopes(job: Job) -> frozenset[str]:
    """The scopes reading the job's result takes; every scope when the job does not say."""
    return ALL_SCOPES if job.read_scopes is None else frozenset(job.read_scopes)


def may_read_result(principal: Principal, job: Job) -> bool:
    """Whether the caller holds every scope the job's result needs (`result_scopes`)."""
    return principal.scopes.issuperset(result_scopes(job))


async def get_visible_job(job_id: Uuid, principal: JobsReader, session: SessionDep) -> VisibleJob:
    """Load a job its owner or a superuser asks for; anyone else's is 404, as if absent."""
    job = await jobs_service.get(session=session, job_id=job_id)
    if job is None or not (principal.user.is_superuser or job.owner_id == principal.user.id):
        raise JobNotFound(job_id)
    return VisibleJob(job=job, result_readable=may_read_result(principal, job))


VisibleJobDep = Annotated[VisibleJob, Depends(get_visible_job)]
