"""The outbox rule, sealed mail, mail sent once however often its job is delivered, the purge."""

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import func, select, update

from app.core.config import Settings
from app.core.security import unseal
from app.db.base import utcnow
from app.deps import resources_of
from app.infra.mail import MailMessage
from app.jobs import dispatcher
from app.jobs import mail as job_mail
from app.jobs import service as jobs_service
from app.jobs.deps import JobSender
from app.jobs.models import Job, JobStatus
from app.tasks import PURGE_EXPIRED
from tests.harness import factory, started
from tests.identity import signed_up
from tests.smtp import SmtpServer, smtp_server, smtp_settings

pytestmark = pytest.mark.anyio
ALICE = "alice@example.com"


async def count_jobs(app: FastAPI) -> int:
    async with factory(app)() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def test_a_rolled_back_job_never_runs(jobs_app: tuple[FastAPI, AsyncClient]) -> None:
    app, _ = jobs_app
    resources = resources_of(app)
    sender = JobSender(factory(app), resources.jobs, resources.settings.jobs)
    async with factory(app)() as session:
        await sender.enqueue(session, task=PURGE_EXPIRED, args={})
        await session.rollback()
    await sender.send()  # what the request does after answering: finds nothing to send
    assert await count_jobs(app) == 0
    sent = await dispatcher.dispatch(factory(app), resources.jobs, redispatch_seconds=300)
    assert sent == 0


async def test_a_committed_job_is_sent_by_the_dispatcher_when_the_request_could_not(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, _ = jobs_app
    resources = resources_of(app)
    async with factory(app)() as session:
        job = await jobs_service.create(
            session=session, task=PURGE_EXPIRED, args={}, max_attempts=1
        )
        await session.commit()
    # The request died before sending: the job waits, committed, until the dispatcher's round.
    sent = await dispatcher.dispatch(factory(app), resources.jobs, redispatch_seconds=300)
    assert sent == 1
    async with factory(app)() as session:
        assert (await session.get(Job, job.id, populate_existing=True)).status == "succeeded"  # type: ignore[union-attr]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mail_app(
    settings: Settings, smtp: SmtpServer
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    configured = smtp_settings(smtp.port, DATABASE_URL=settings.database.url)
    async with started(configured, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                       SMTP_PORT=smtp.port, SMTP_STARTTLS=False) as pair:  # fmt: skip
        yield pair


async def test_a_mail_job_delivered_again_sends_no_second_mail(
    mail_app: tuple[FastAPI, AsyncClient], smtp: SmtpServer
) -> None:
    app, client = mail_app
    alice = await signed_up(client, ALICE)
    assert (
        await client.post("/api/v1/auth/verify-email/request", headers=alice)
    ).status_code == 202
    [message] = await smtp.inbox.wait_for(1)
    [job] = (await client.get("/api/v1/jobs", headers=alice)).json()["items"]
    assert message["Message-ID"] == f"<{job['id']}@example.com>"
    for _ in range(2):  # the broker delivers the same job again (a redelivery, a re-send)
        await resources_of(app).jobs.send(uuid.UUID(job["id"]))
    assert len(smtp.inbox.received) == 1


async def test_a_queued_mail_is_sealed(jobs_app: tuple[FastAPI, AsyncClient]) -> None:
    app, _ = jobs_app
    resources = resources_of(app)
    secret = resources.settings.auth.jwt_secret.get_secret_value()
    sender = JobSender(factory(app), resources.jobs, resources.settings.jobs)
    message = MailMessage(to=ALICE, subject="Code", text="token-Zx9-secret")
    async with factory(app)() as session:
        await job_mail.send_later(sender, session, message, secret=secret)
        await session.flush()
        args = (await session.scalars(select(Job))).one().args
        await session.rollback()
    stored = json.dumps(args)
    assert "token-Zx9-secret" not in stored
    assert ALICE not in stored
    assert json.loads(unseal(args["sealed"], secret=secret))["text"] == "token-Zx9-secret"


def crashed_write(directory: Path) -> None:
    """A partial result file left long ago by a worker that died writing it."""
    orphan = directory / f"{uuid.uuid4()}.json.part"
    orphan.write_bytes(b"{")
    os.utime(orphan, (time.time() - 10_000, time.time() - 10_000))


async def test_the_purge_removes_expired_jobs_and_their_files(
    jobs_app: tuple[FastAPI, AsyncClient], results_dir: Path
) -> None:
    app, client = jobs_app
    alice = await signed_up(client, ALICE)
    exported = (await client.post("/api/v1/users/me/export", headers=alice)).json()
    crashed_write(results_dir)
    ttl = resources_of(app).settings.jobs.result_ttl_seconds
    async with factory(app)() as session:
        long_ago = utcnow() - timedelta(seconds=ttl + 1)
        await session.execute(
            update(Job).where(Job.id == uuid.UUID(exported["id"])).values(finished_at=long_ago)
        )
        purge = await jobs_service.create(
            session=session, task=PURGE_EXPIRED, args={}, max_attempts=1
        )
        await session.commit()
    await dispatcher.dispatch(
        factory(app), resources_of(app).jobs, redispatch_seconds=300, ids=[purge.id]
    )
    async with factory(app)() as session:
        assert await session.get(Job, uuid.UUID(exported["id"])) is None
        done = await session.get(Job, purge.id, populate_existing=True)
    assert done is not None
    assert done.status == JobStatus.SUCCEEDED
    assert done.result is not None
    assert done.result["result_files"] == 2
    assert files_in(results_dir) == []


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())
