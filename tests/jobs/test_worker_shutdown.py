"""A job that ignores its cancellation: the worker still exits in time, the job runs once at a time.

Two `app worker` processes run `tests.jobs.stubborn_worker`; the one that took the job is
stopped (SIGTERM) while the job blocks without heeding its cancellation.
"""

import signal
import time
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.shutdown import EXIT_SECONDS
from tests.harness import factory
from tests.jobs.processes import JobProcess, feeding_app, job_process, job_settings, poll
from tests.jobs.stubborn_worker import TASK, attempts_of
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio
GRACE_SECONDS = 1
ROOT = Path(__file__).parents[2]  # the processes run in tmp_path: `tests` is found from here


async def enqueue(app: FastAPI) -> uuid.UUID:
    async with factory(app)() as session:
        job = await jobs_service.create(session=session, task=TASK, args={}, max_attempts=3)
        await session.commit()
        return job.id


async def job_row(app: FastAPI, job_id: uuid.UUID) -> Job:
    async with factory(app)() as session:
        job = await session.get(Job, job_id, populate_existing=True)
        assert job is not None
        return job


# Each way of ignoring the cancellation once, each backend's claim query once.
@pytest.mark.parametrize(
    ("mode", "database_url"),
    [("thread", "postgresql"), ("swallow", "sqlite")],
    indirect=["database_url"],
)
async def test_a_job_ignoring_its_cancellation_neither_holds_the_worker_nor_runs_twice_at_once(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path, mode: str
) -> None:
    attempts, block = tmp_path / "attempts", tmp_path / "block"
    block.touch()
    settings = job_settings(
        live_database_url, redis_server.url, tmp_path,
        JOBS_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS), JOBS_LEASE_SECONDS="3",
    )  # fmt: skip
    stubborn = "tests.jobs.stubborn_worker"
    worker_env = {**settings, "STUBBORN_LOG": str(attempts), "STUBBORN_BLOCK": str(block),
                  "STUBBORN_MODE": mode, "PYTHONPATH": str(ROOT)}  # fmt: skip
    with (
        job_process("scheduler", tmp_path, settings),
        job_process("worker", tmp_path, worker_env, module=stubborn) as first,
        job_process("worker", tmp_path, worker_env, module=stubborn) as second,
    ):
        async with feeding_app(settings) as (app, _):
            job_id = await enqueue(app)
            [(pid, _)] = await poll(lambda: _async(attempts_of, attempts), bool)
            holder: JobProcess = first if pid == first.process.pid else second
            block.unlink()  # the next attempt finishes at once
            holder.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            holder.process.wait(timeout=GRACE_SECONDS + EXIT_SECONDS + 30)
            took, exited_at = time.monotonic() - stopped, time.time()
            job = await poll(lambda: job_row(app, job_id), lambda j: j.status == "succeeded")
    assert took < GRACE_SECONDS + EXIT_SECONDS + 3, took
    assert holder.events("worker_exit_forced")
    [_, (again_pid, again_at)] = attempts_of(attempts)
    # The second attempt began only once the first worker (and its thread) was gone.
    assert again_pid != pid
    assert again_at >= exited_at - 0.5
    # Handed back (uncounted) when the handler let go of the await; else its lease lapsed.
    assert job.attempts == (1 if mode == "thread" else 2)
    assert job.status == JobStatus.SUCCEEDED


async def _async(read: object, *args: object) -> object:
    assert callable(read)
    return read(*args)
