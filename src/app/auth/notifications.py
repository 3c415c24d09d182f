"""The one place that sends account mail.

Mail goes out after the response, so neither timing nor mail failures reveal which emails
have accounts.
"""

import structlog
from fastapi import BackgroundTasks

from app.core.errors import AppError
from app.infra.mail import Mailer, MailMessage

log = structlog.get_logger(__name__)


async def _deliver(mailer: Mailer, message: MailMessage) -> None:
    try:
        await mailer.send(message)
    except AppError:
        log.warning("account_mail_not_sent", subject=message.subject)


def send_later(background: BackgroundTasks, mailer: Mailer, message: MailMessage) -> None:
    """Queue a mail to go out once the response is sent."""
    background.add_task(_deliver, mailer, message)


def password_reset_message(*, to: str, token: str, ttl_seconds: int) -> MailMessage:
    """The mail that carries a password-reset token."""
    minutes = ttl_seconds // 60
    return MailMessage(
        to=to,
        subject="Reset your password",
        text=(
            "Someone asked to reset the password of this account.\n\n"
            f"Your reset code (valid {minutes} minutes, usable once):\n\n{token}\n\n"
            "If it was not you, ignore this mail: your password stays as it is."
        ),
    )


def verification_message(*, to: str, token: str) -> MailMessage:
    """The mail that carries an email-verification token."""
    return MailMessage(
        to=to,
        subject="Confirm your email address",
        text=f"Confirm this address with the code:\n\n{token}\n",
    )
