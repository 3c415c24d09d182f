"""A real SMTP server for tests (aiosmtpd on loopback) and the settings that point at it."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import anyio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session

from app.core.config import Settings
from tests.harness import free_port, make_settings


@dataclass
class Received:
    """One accepted message with its envelope and the login that sent it, if any."""

    mail_from: str | None
    rcpt_tos: list[str]
    message: EmailMessage
    login: bytes | None


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message the server accepts.

    It refuses the first `refusals` messages with a temporary failure (a server in trouble).
    """

    received: list[Received] = field(default_factory=list)
    refusals: int = 0

    @property
    def messages(self) -> list[EmailMessage]:
        return [item.message for item in self.received]

    async def handle_DATA(  # noqa: N802 - the hook name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert envelope.original_content is not None
        if self.refusals:
            self.refusals -= 1
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, envelope.rcpt_tos, message, login))
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Return the messages once `count` have arrived (mail goes out after the response)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} mails arrived"
            await anyio.sleep(0.02)
        return self.messages


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox


@contextmanager
def smtp_server(*, refusals: int = 0, **smtp_options: Any) -> Iterator[SmtpServer]:
    """Run an SMTP server on loopback for the duration of the block (see `Inbox`)."""
    inbox = Inbox(refusals=refusals)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield SmtpServer(port, inbox)
    finally:
        controller.stop()


def smtp_settings(port: int, **overrides: Any) -> Settings:
    """Test settings that send mail over SMTP to 127.0.0.1:`port` without TLS."""
    values: dict[str, Any] = {
        "MAIL_BACKEND": "smtp",
        "MAIL_FROM": "service@example.com",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_STARTTLS": False,
        "SMTP_TIMEOUT": 5.0,
    }
    values.update(overrides)
    return make_settings(**values)
