"""The jobs settings change what runs: how many jobs at once, for how long, and the grace at exit.

Slow mail makes a job last: each verification mail is one `send_email` job, and the SMTP
server counts the messages it is accepting at once. Embedded mode (no broker) runs in the
app's own process; the worker's listener runs in the test's, on a Redis of its own.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings
from app.db.base import utcnow
from app.deps import resources_of
from app.jobs import dispatcher
from app.jobs import service as jobs_service
from app.jobs.models import Job
from app.main import create_app
from app.resources import build_resources, close_resources
from app.tasks import PURGE_EXPIRED, bind
from app.worker import _listen
from tests.e2e.server import server_env
from tests.harness import client_for, factory, make_settings, started
from tests.identity import signed_up, unique_email
from tests.jobs.processes import SlowInbox, feeding_app, job_settings, poll, slow_smtp, smtp_to
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio
VERIFY = "/api/v1/auth/verify-email/request"
JOBS = "/api/v1/jobs"


@asynccontextmanager
async def embedded(
    database_url: str, smtp_port: int, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The app running its own jobs (no broker, not inline), committing for real."""
    settings = make_settings(
        DATABASE_URL=database_url, JOBS_EAGER=False, JOBS_DISPATCH_INTERVAL_SECONDS=0.2,
        **smtp_to(smtp_port), **overrides,
    )  # fmt: skip
    app = create_app(settings)
    assert resources_of(app).jobs.embedded
    async with LifespanManager(app), client_for(app) as client:
        yield app, client


async def ask_for_mails(client: AsyncClient, count: int) -> None:
    """Sign up `count` accounts, then have each ask for a verification mail, all at once."""
    accounts = [await signed_up(client, unique_email("mail")) for _ in range(count)]
    answers = await asyncio.gather(*(client.post(VERIFY, headers=h) for h in accounts))
    assert [answer.status_code for answer in answers] == [202] * count


async def received(inbox: SlowInbox, count: int) -> None:
    async def read() -> int:
        return len(inbox.received)

    await poll(read, lambda arrived: arrived == count, seconds=30)


async def test_the_embedded_runner_runs_jobs_concurrency_at_a_time(
    live_database_url: str,
) -> None:
    with slow_smtp(0.5) as (port, inbox):
        async with embedded(live_database_url, port, JOBS_CONCURRENCY=2) as (_, client):
            await ask_for_mails(client, 5)
            await received(inbox, 5)
    assert inbox.peak == 2


@pytest.mark.parametrize(
    ("override", "peak"), [(None, 2), (1, 1)], ids=["jobs-concurrency", "cli-override"]
)
async def test_a_worker_runs_jobs_concurrency_at_a_time(
    live_database_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
    override: int | None,
    peak: int,
) -> None:
    with slow_smtp(0.5) as (port, inbox):
        values = job_settings(live_database_url, redis_server.url, tmp_path, **smtp_to(port))
        worker_settings = make_settings(
            **values, JOBS_CONCURRENCY=2, JWT_SECRET=server_env()["JWT_SECRET"]
        )
        resources = build_resources(worker_settings, version="0.0.0-test")
        bind(resources)
        stop = asyncio.Event()
        listening = asyncio.create_task(_listen(resources, stop, override))
        try:
            async with feeding_app(values) as (_, client):
                await ask_for_mails(client, 4)
                await received(inbox, 4)
        finally:
            stop.set()
            async with asyncio.timeout(15):
                await listening
            await close_resources(resources)
    assert inbox.peak == peak


async def test_an_attempt_is_stopped_after_jobs_task_timeout_seconds(settings: Settings) -> None:
    with slow_smtp(5.0) as (port, _):
        overrides: dict[str, Any] = {"JOBS_TASK_TIMEOUT_SECONDS": 0.5, "JOBS_MAX_RETRIES": 0}
        overrides.update(smtp_to(port))
        async with started(settings, **overrides) as (_, client):
            headers = await signed_up(client, unique_email("timeout"))
            began = time.monotonic()
            assert (await client.post(VERIFY, headers=headers)).status_code == 202  # ran inline
            took = time.monotonic() - began
            [job] = (await client.get(JOBS, headers=headers)).json()["items"]
    assert took < 3.0
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error"] == "The job did not finish within 0.5 seconds."


async def test_at_exit_a_running_job_gets_jobs_shutdown_grace_seconds_then_goes_back(
    live_database_url: str,
) -> None:
    with slow_smtp(5.0) as (port, inbox):
        overrides = {"JOBS_SHUTDOWN_GRACE_SECONDS": 0.5}
        async with embedded(live_database_url, port, **overrides) as (_, client):
            await ask_for_mails(client, 1)

            async def started_mails() -> int:
                return inbox.started

            await poll(started_mails, lambda count: count == 1, seconds=30)
            leaving = time.monotonic()
        took = time.monotonic() - leaving
    assert 0.5 <= took < 3.0
    assert forced_exits_armed() == []  # an app in the test's process never ends that process
    engine = create_async_engine(live_database_url)
    try:
        async with engine.connect() as connection:
            [job] = (await connection.execute(select(Job.status, Job.attempts))).all()
    finally:
        await engine.dispose()
    assert tuple(job) == ("queued", 0)  # handed back, this attempt uncounted


async def test_the_purge_deletes_jobs_finished_longer_than_jobs_result_ttl_seconds_ago(
    settings: Settings, results_dir: Path
) -> None:
    async with started(
        settings, JOBS_RESULTS_DIR=str(results_dir), JOBS_RESULT_TTL_SECONDS=120
    ) as (app, client):
        ages = {"expired": 121, "kept": 100}
        ids: dict[str, uuid.UUID] = {}
        for name in ages:
            headers = await signed_up(client, unique_email(name))
            exported = await client.post("/api/v1/users/me/export", headers=headers)
            ids[name] = uuid.UUID(exported.json()["id"])
        async with factory(app)() as session:
            for name, seconds in ages.items():
                finished = utcnow() - timedelta(seconds=seconds)
                await session.execute(
                    update(Job).where(Job.id == ids[name]).values(finished_at=finished)
                )
            purge = await jobs_service.create(
                session=session, task=PURGE_EXPIRED, args={}, max_attempts=1
            )
            await session.commit()
        queue = resources_of(app).jobs
        await dispatcher.dispatch(factory(app), queue, redispatch_seconds=300, ids=[purge.id])
        async with factory(app)() as session:
            left = set(await session.scalars(select(Job.id).where(Job.id.in_(ids.values()))))
    assert left == {ids["kept"]}
    assert result_files(results_dir) == [f"{ids['kept']}.json"]


def forced_exits_armed() -> list[threading.Thread]:
    """The timers `app.shutdown.exit_by` started that have not fired yet."""
    return [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, threading.Timer)
        and getattr(thread.function, "__qualname__", "") == "exit_by.<locals>.force"
    ]


def result_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())
