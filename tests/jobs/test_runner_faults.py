"""A job meets a database that is away: nothing is lost, and the log says so without a trace.

The failures are real: sessions of an engine whose server refuses connections, handed out by a
factory in place of the app's for as many sessions as a test says.
"""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.session import create_engine, create_session_factory
from app.deps import resources_of
from app.jobs import runner
from app.jobs import service as jobs_service
from app.jobs.claims import Claim
from app.jobs.models import Job, JobStatus
from app.jobs.runner import JobContext
from app.tasks import HANDLERS, PURGE_EXPIRED, job_context
from tests.harness import factory, free_port, log_lines, make_settings

pytestmark = pytest.mark.anyio


class Outage:
    """A session factory that hands out sessions of an unreachable database when told to."""

    def __init__(
        self, real: async_sessionmaker[AsyncSession], away: async_sessionmaker[AsyncSession]
    ) -> None:
        self.real = real
        self.away = away
        self.plan: list[bool] = []  # per session, in order: True = the database is away

    def __call__(self) -> AsyncSession:
        down = self.plan.pop(0) if self.plan else False
        return (self.away if down else self.real)()


@pytest.fixture
async def outage(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> AsyncIterator[Outage]:
    app, _ = jobs_app
    # Nothing listens there: every connection is refused, as during a restart.
    nowhere = f"postgresql+asyncpg://app@127.0.0.1:{free_port()}/app"
    engine = create_engine(
        make_settings(DATABASE_URL=nowhere, DATABASE_CONNECT_TIMEOUT="1").database,
        application_name="test",
    )
    try:
        yield Outage(factory(app), create_session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "STEP_FIRST_WAIT_SECONDS", 0.01)


async def queued_job(app: FastAPI) -> Job:
    async with factory(app)() as session:
        job = await jobs_service.create(
            session=session, task=PURGE_EXPIRED, args={}, max_attempts=2
        )
        await session.commit()
    return job


async def status_of(app: FastAPI, job_id: uuid.UUID) -> tuple[str, int]:
    async with factory(app)() as session:
        job = await session.get(Job, job_id, populate_existing=True)
        assert job is not None
        return job.status, job.attempts


def context(app: FastAPI, outage: Outage) -> JobContext:
    sessions = cast("async_sessionmaker[AsyncSession]", outage)
    return dataclasses.replace(job_context(resources_of(app)), session_factory=sessions)


async def test_a_claim_that_meets_a_blip_is_tried_again(
    jobs_app: tuple[FastAPI, AsyncClient], outage: Outage
) -> None:
    app, _ = jobs_app
    job = await queued_job(app)
    outage.plan = [True, True]  # the claim's first two tries
    await runner.run(context(app, outage), HANDLERS, str(job.id))
    assert await status_of(app, job.id) == (JobStatus.SUCCEEDED, 1)


@pytest.mark.parametrize("step", ["claim", "outcome"])
async def test_a_longer_outage_loses_no_job_and_logs_no_traceback(
    jobs_app: tuple[FastAPI, AsyncClient], outage: Outage, step: str
) -> None:
    app, _ = jobs_app
    job = await queued_job(app)
    tries = [True] * runner.STEP_ATTEMPTS
    # "outcome": the claim and the handler's own session work, then the database goes.
    outage.plan = tries if step == "claim" else [False, False, *tries]
    with log_lines() as logs:
        await runner.run(context(app, outage), HANDLERS, str(job.id))  # raises nothing
    event = "job_claim_failed" if step == "claim" else "job_outcome_not_recorded"
    [line] = logs.events(event)
    assert (line["level"], line["error"]) == ("warning", "OperationalError")
    assert "Traceback" not in logs.stream.getvalue()
    status, attempts = await status_of(app, job.id)
    if step == "claim":
        # Still queued: the dispatcher sends it again.
        assert (status, attempts) == (JobStatus.QUEUED, 0)
    else:
        # Still claimed: once the lease lapses, a worker runs it again.
        assert (status, attempts) == (JobStatus.RUNNING, 1)


async def _failing(_: JobContext, __: Claim) -> None:
    raise RuntimeError("the peer said no")


@pytest.mark.parametrize("attempts", [1, 2], ids=["retry", "final"])
async def test_a_failure_whose_outcome_meets_an_outage_runs_again_after_its_lease(
    jobs_app: tuple[FastAPI, AsyncClient], outage: Outage, attempts: int
) -> None:
    app, _ = jobs_app
    job = await queued_job(app)  # max_attempts=2: the second attempt's failure is final
    async with factory(app)() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(attempts=attempts - 1))
        await session.commit()
    outage.plan = [False, *[True] * runner.STEP_ATTEMPTS]  # the claim works, then it goes
    with log_lines() as logs:
        await runner.run(context(app, outage), {PURGE_EXPIRED: _failing}, str(job.id))
    [line] = logs.events("job_outcome_not_recorded")
    assert line["level"] == "warning"
    # Neither retried nor failed on a guess: still claimed, so it runs again once the lease lapses.
    assert await status_of(app, job.id) == (JobStatus.RUNNING, attempts)
