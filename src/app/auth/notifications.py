"""The account mails.

They go out through the job queue (`app.jobs.mail.send_later`) once the request committed, so
neither timing nor mail failures reveal which emails have accounts.
"""

import dataclasses

from app.infra.mail import MailMessage


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


def email_change_message(*, to: str, token: str) -> MailMessage:
    """The mail to a new address that carries the token proving the account may move there."""
    return MailMessage(
        to=to,
        subject="Confirm your new email address",
        text=(
            "Someone asked to move an account to this address.\n\n"
            f"Confirm with the code:\n\n{token}\n\n"
            "If it was not you, ignore this mail: nothing changes."
        ),
    )


def email_change_notice(*, to: str, new_email: str) -> MailMessage:
    """The mail that tells the old address its account is about to move."""
    name, _, domain = new_email.partition("@")
    shown = f"{name[:1]}***@{domain}"
    return MailMessage(
        to=to,
        subject="Your account's email is about to change",
        text=(
            f"Someone asked to change this account's email to {shown}. It changes once the "
            "link sent there is confirmed.\n\n"
            "If it was not you, reset your password now: that ends every session and cancels "
            "the change."
        ),
    )


def with_message_id(message: MailMessage, message_id: str) -> MailMessage:
    """The same message with its Message-ID set."""
    return dataclasses.replace(message, message_id=message_id)
