"""Outgoing mail: a console backend for development and SMTP through aiosmtplib."""

import contextlib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import structlog

from app.core.errors import ExternalServiceError
from app.core.settings_groups import MailSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One plain-text message to one recipient."""

    to: str
    subject: str
    text: str
    # Set by the mail job from its id: a mail sent again after a crash carries the same one,
    # so mail clients can show it once.
    message_id: str | None = None


class Mailer(Protocol):
    """Anything that can deliver a `MailMessage`."""

    async def send(self, message: MailMessage) -> None:
        """Deliver `message`, or raise `ExternalServiceError`."""


class ConsoleMailer:
    """Write messages to the log instead of sending them, so `make run` needs no mail server."""

    def __init__(self, *, show_bodies: bool) -> None:
        # Bodies carry reset and verification links; a production log must never hold them.
        self._show_body = show_bodies

    async def send(self, message: MailMessage) -> None:
        """Log the message, with its body only outside production."""
        if self._show_body:
            log.info("mail_sent", to=message.to, subject=message.subject, body=message.text)
        else:
            log.info("mail_sent", to=message.to, subject=message.subject, body_omitted=True)


class SmtpMailer:
    """Send messages through the SMTP server named in the settings."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings

    def _build(self, message: MailMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._settings.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        if message.message_id is not None:
            email["Message-ID"] = message.message_id
        email.set_content(message.text)
        return email

    async def send(self, message: MailMessage) -> None:
        """Send the message in one SMTP session; any failure becomes `ExternalServiceError`.

        Cancelled (a job's timeout, a worker stopping), it drops the connection at once:
        aiosmtplib's own context manager would first say QUIT and wait for a server still
        busy with the message, up to `SMTP_TIMEOUT` past the deadline.
        """
        settings = self._settings
        password = settings.smtp_password
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )
        try:
            await client.connect()
            await client.send_message(self._build(message))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            # Only the type name: server replies and exception text can echo credentials.
            log.warning(
                "mail_failed", to=message.to, subject=message.subject, error=type(exc).__name__
            )
            raise ExternalServiceError("The mail server did not accept the message.") from exc
        except BaseException:
            client.close()
            raise
        await _say_goodbye(client)


async def _say_goodbye(client: aiosmtplib.SMTP) -> None:
    """End the session politely; the message was accepted, so a failure here changes nothing."""
    try:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()
    finally:
        client.close()


def create_mailer(settings: MailSettings, *, environment: str) -> Mailer:
    """Return the mail backend that `MAIL_BACKEND` selects.

    The console backend logs message bodies everywhere but in production.
    """
    if settings.backend == "smtp":
        return SmtpMailer(settings)
    return ConsoleMailer(show_bodies=environment != "production")
