"""Embedded mode (no broker): the web process exits in bounded time, whatever its jobs do.

`app serve` runs as `tests.jobs.stubborn_worker serve` on a migrated SQLite file, without
Redis: the web process sends and runs the jobs, the `stubborn` task among them. It is stopped
(SIGTERM) while that job blocks without heeding its cancellation, then a second server takes
the job over.
"""

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.session import create_session_factory
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.shutdown import EXIT_SECONDS
from tests.e2e.server import server_env
from tests.harness import free_port
from tests.jobs.processes import STARTUP_SECONDS, poll
from tests.jobs.stubborn_worker import TASK, attempts_of
from tests.migrations import migrate
from tests.migrations import test_engine as engine_for
from tests.processes import log_file_lines, server_process, serves_liveness, wait_until

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[2]  # the server runs in tmp_path: `tests` is found from here
GRACE_SECONDS = 1
BOUND = GRACE_SECONDS + EXIT_SECONDS
Factory = async_sessionmaker[AsyncSession]


@dataclass
class Stubborn:
    """The files the stubborn task reads and writes, and the server's settings."""

    directory: Path
    mode: str

    @property
    def attempts(self) -> Path:
        return self.directory / "attempts"

    @property
    def block(self) -> Path:
        return self.directory / "block"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.directory / 'app.db'}"

    def env(self) -> dict[str, str]:
        env = server_env(
            DATABASE_URL=self.database_url, JOBS_RESULTS_DIR=str(self.directory / "results"),
            JOBS_EAGER="false", JOBS_DISPATCH_INTERVAL_SECONDS="0.2",
            JOBS_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS), JOBS_LEASE_SECONDS="3",
            STUBBORN_LOG=str(self.attempts), STUBBORN_BLOCK=str(self.block),
            STUBBORN_MODE=self.mode, PYTHONPATH=str(ROOT),
        )  # fmt: skip
        env.pop("JOBS_BROKER_URL", None)  # embedded: no broker at all
        return env


@asynccontextmanager
async def database(stubborn: Stubborn) -> AsyncIterator[Factory]:
    """The servers' SQLite file, migrated, and sessions on it for the test."""
    await migrate(stubborn.database_url, "head")
    engine = engine_for(stubborn.database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@contextmanager
def serving(stubborn: Stubborn) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`app serve` (with the stubborn task) on a free port, once it answers its liveness probe."""
    port = free_port()
    log = stubborn.directory / f"serve-{port}.log"
    command = [sys.executable, "-m", "tests.jobs.stubborn_worker", "serve", "--port", str(port)]
    with server_process(command, log, stubborn.env()) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: serves_liveness(process, url), "app serve", seconds=STARTUP_SECONDS)
        yield process, log


async def enqueue(factory: Factory) -> uuid.UUID:
    async with factory() as session:
        job = await jobs_service.create(session=session, task=TASK, args={}, max_attempts=3)
        await session.commit()
        return job.id


async def job_row(factory: Factory, job_id: uuid.UUID) -> Job:
    async with factory() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def started_attempts(stubborn: Stubborn, count: int) -> list[tuple[int, float]]:
    async def read() -> list[tuple[int, float]]:
        return attempts_of(stubborn.attempts)

    found: list[tuple[int, float]] = await poll(read, lambda seen: len(seen) >= count)
    return found


def stop_and_time(process: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """SIGTERM, then wait: (exit code, seconds it took, wall-clock time it was gone)."""
    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    code = process.wait(timeout=BOUND + 30)
    return code, time.monotonic() - stopped, time.time()


def events(log: Path, event: str) -> list[dict[str, Any]]:
    return [line for line in log_file_lines(log) if line.get("event") == event]


@pytest.mark.parametrize("mode", ["thread", "swallow"])
async def test_a_job_ignoring_its_cancellation_does_not_keep_the_web_process_alive(
    tmp_path: Path, mode: str
) -> None:
    stubborn = Stubborn(tmp_path, mode)
    stubborn.block.touch()
    async with database(stubborn) as factory:
        with serving(stubborn) as (first, log):
            job_id = await enqueue(factory)
            [(pid, _)] = await started_attempts(stubborn, 1)
            stubborn.block.unlink()  # the next attempt finishes at once
            code, took, exited_at = stop_and_time(first)
        assert pid == first.pid  # the web process ran the job itself
        assert (code, took < BOUND + 3) == (1, True), took
        [forced] = events(log, "web_exit_forced")
        assert (forced["level"], forced["after"]) == ("error", EXIT_SECONDS)
        # A cancelled thread's task stops (the job is handed back) while its thread runs on;
        # a swallowed cancellation leaves the task itself running.
        assert len(events(log, "jobs_not_stopped")) == (0 if mode == "thread" else 1)
        assert len(events(log, "job_handed_back")) == (1 if mode == "thread" else 0)
        left = await job_row(factory, job_id)
        assert left.status == (JobStatus.QUEUED if mode == "thread" else JobStatus.RUNNING)
        with serving(stubborn):
            job = await poll(lambda: job_row(factory, job_id), lambda j: j.status == "succeeded")
    [_, (again_pid, again_at)] = attempts_of(stubborn.attempts)
    assert again_pid != pid
    assert again_at > exited_at
    # Handed back (uncounted) when the handler let go of the await; else its lease lapsed.
    assert job.attempts == (1 if mode == "thread" else 2)


@pytest.mark.parametrize("running", ["none", "heeding"])
async def test_a_web_process_whose_jobs_stop_exits_0_without_being_forced(
    tmp_path: Path, running: str
) -> None:
    stubborn = Stubborn(tmp_path, "heed")
    async with database(stubborn) as factory:
        with serving(stubborn) as (process, log):
            done = await enqueue(factory)  # no block file: it finishes at once
            await poll(lambda: job_row(factory, done), lambda j: j.status == "succeeded")
            if running == "heeding":
                stubborn.block.touch()
                cancelled = await enqueue(factory)
                await started_attempts(stubborn, 2)
            code, took, _ = stop_and_time(process)
        if running == "heeding":
            job = await job_row(factory, cancelled)
            assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)  # handed back
    assert (code, took < GRACE_SECONDS + 3) == (0, True), took
    assert events(log, "web_exit_forced") == []
    assert events(log, "shutdown")
