"""A reset mail that failed goes out on the job's retry: the resend limit counts mails sent."""

import dataclasses
import uuid

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.auth.jobs import SEND_PASSWORD_RESET, send_password_reset
from app.core.errors import ExternalServiceError
from app.deps import resources_of
from app.infra.mail import SmtpMailer
from app.jobs.claims import Claim
from app.jobs.runner import JobContext
from app.tasks import job_context
from tests.auth.test_reset_and_verification import ALICE, TOKEN_LINE, action_token_rows, sha256
from tests.identity import register
from tests.smtp import SmtpServer, smtp_server, smtp_settings

pytestmark = pytest.mark.anyio


def reset_job(app: FastAPI, server: SmtpServer) -> JobContext:
    """What the worker runs `send_password_reset` with, mailing through `server`."""
    mailer = SmtpMailer(smtp_settings(server.port).mail)
    return dataclasses.replace(job_context(resources_of(app)), mailer=mailer)


def reset_claim(email: str, attempt: int = 1) -> Claim:
    return Claim(
        job_id=uuid.uuid4(),
        token=uuid.uuid4(),
        task=SEND_PASSWORD_RESET,
        args={"email": email},
        owner_id=None,
        attempt=attempt,
        max_attempts=4,
        request_id=None,
        traceparent=None,
    )


async def test_a_reset_mail_that_failed_goes_out_on_the_jobs_retry(
    app: FastAPI, client: AsyncClient
) -> None:
    """The retry comes within the resend interval; the failed attempt's token, never mailed,
    must not count as the mail of that interval (else the job succeeds, mailing nothing).
    """
    user = await register(client, ALICE)
    with smtp_server(refusals=1) as server:
        context = reset_job(app, server)
        with pytest.raises(ExternalServiceError):  # SMTP refused: the runner retries the job
            await send_password_reset(context, reset_claim(ALICE, attempt=1))

        await send_password_reset(context, reset_claim(ALICE, attempt=2))

    [mail] = server.inbox.messages
    assert mail["To"] == ALICE
    # The failed attempt's token was withdrawn: only the mailed one works.
    rows = await action_token_rows(app, user["id"])
    [token] = TOKEN_LINE.findall(mail.get_content())
    assert [row["token_hash"] for row in rows if row["used_at"] is None] == [sha256(token)]


async def test_a_reset_asked_again_within_the_interval_after_a_mail_went_out_mails_nothing(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client, ALICE)
    with smtp_server() as server:
        context = reset_job(app, server)
        await send_password_reset(context, reset_claim(ALICE))
        await send_password_reset(context, reset_claim(ALICE))

    assert [mail["To"] for mail in server.inbox.messages] == [ALICE]
