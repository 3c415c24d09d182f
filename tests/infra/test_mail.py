import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.core.errors import ExternalServiceError
from app.infra.mail import ConsoleMailer, MailMessage, SmtpMailer, create_mailer
from tests.harness import PRODUCTION, free_port, log_lines, make_settings
from tests.jobs.processes import slow_smtp
from tests.smtp import SmtpServer, smtp_server, smtp_settings

pytestmark = pytest.mark.anyio

USERNAME = "mailer"
PASSWORD = "correct-horse-battery-staple"
WRONG_PASSWORD = "tr0ub4dor-and-3"
MESSAGE = MailMessage(
    to="ada@example.com", subject="Reset your password", text="Open https://x.test/r?t=abc123"
)


def accept_one_account(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    expected = LoginPassword(USERNAME.encode(), PASSWORD.encode())
    if auth_data == expected:
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    # No TLS in tests, so AUTH must be offered over plain text.
    with smtp_server(authenticator=accept_one_account, auth_require_tls=False) as running:
        yield running


async def test_smtp_delivers_the_message(server: SmtpServer) -> None:
    await SmtpMailer(smtp_settings(server.port).mail).send(MESSAGE)

    [received] = server.inbox.received
    assert received.mail_from == "service@example.com"
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.message["From"] == "service@example.com"
    assert received.message["To"] == "ada@example.com"
    assert received.message["Subject"] == "Reset your password"
    assert received.message.get_content().strip() == MESSAGE.text
    assert received.login is None


async def test_smtp_authenticates_with_the_right_password(auth_server: SmtpServer) -> None:
    settings = smtp_settings(auth_server.port, SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD)

    await SmtpMailer(settings.mail).send(MESSAGE)

    [received] = auth_server.inbox.received
    assert received.login == USERNAME.encode()
    assert received.message["Subject"] == "Reset your password"


async def test_smtp_wrong_password_fails_without_logging_it(auth_server: SmtpServer) -> None:
    settings = smtp_settings(auth_server.port, SMTP_USERNAME=USERNAME, SMTP_PASSWORD=WRONG_PASSWORD)

    with log_lines() as logs, pytest.raises(ExternalServiceError) as raised:
        await SmtpMailer(settings.mail).send(MESSAGE)

    assert isinstance(raised.value.__cause__, aiosmtplib.SMTPAuthenticationError)
    assert raised.value.status_code == 502
    assert auth_server.inbox.received == []
    [failure] = logs.events("mail_failed")
    assert failure["level"] == "warning"
    assert failure["to"] == "ada@example.com"
    assert failure["subject"] == "Reset your password"
    assert failure["error"] == "SMTPAuthenticationError"
    output = logs.stream.getvalue()
    assert WRONG_PASSWORD not in output
    assert PASSWORD not in output


async def test_smtp_starttls_against_a_server_without_it_fails(server: SmtpServer) -> None:
    settings = smtp_settings(server.port, SMTP_STARTTLS=True)

    with pytest.raises(ExternalServiceError, match="did not accept") as raised:
        await SmtpMailer(settings.mail).send(MESSAGE)

    assert isinstance(raised.value.__cause__, aiosmtplib.SMTPException)
    assert server.inbox.received == []


async def test_smtp_closed_port_fails_fast() -> None:
    settings = smtp_settings(free_port(), SMTP_TIMEOUT=10.0)

    started = time.monotonic()
    with log_lines() as logs, pytest.raises(ExternalServiceError):
        await SmtpMailer(settings.mail).send(MESSAGE)

    # A refused connection must not wait for the timeout.
    assert time.monotonic() - started < 2.0
    assert [line["error"] for line in logs.events("mail_failed")] == ["SMTPConnectError"]


async def test_a_cancelled_send_ends_at_once_while_the_server_still_works() -> None:
    # A job's timeout or a worker's grace cancels the send; it must not wait for the server.
    with slow_smtp(5.0) as (port, inbox):
        mailer = SmtpMailer(smtp_settings(port).mail)
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await mailer.send(MESSAGE)
        took = time.monotonic() - began
        assert inbox.started == 1  # cancelled while the server was taking the message
    assert took < 2.0


async def test_console_mailer_logs_the_body_outside_production() -> None:
    with log_lines() as logs:
        await create_mailer(make_settings(ENVIRONMENT="local").mail, environment="local").send(
            MESSAGE
        )

    [sent] = logs.events("mail_sent")
    assert sent["level"] == "info"
    assert sent["to"] == "ada@example.com"
    assert sent["subject"] == "Reset your password"
    assert sent["body"] == MESSAGE.text


async def test_console_mailer_omits_the_body_in_production() -> None:
    production = make_settings(**PRODUCTION)

    with log_lines() as logs:
        await create_mailer(production.mail, environment=production.app.environment).send(MESSAGE)

    [sent] = logs.events("mail_sent")
    assert sent["to"] == "ada@example.com"
    assert sent["body_omitted"] is True
    assert "body" not in sent
    assert MESSAGE.text not in logs.stream.getvalue()


def test_create_mailer_picks_the_backend() -> None:
    assert isinstance(create_mailer(make_settings().mail, environment="test"), ConsoleMailer)
    assert isinstance(create_mailer(smtp_settings(25).mail, environment="test"), SmtpMailer)
