"""The `send_email` job: a mail that goes out through the queue, retried when SMTP fails.

Its message is sealed (encrypted with a key derived from JWT_SECRET) in the job's
arguments: mails carry single-use tokens, which the database otherwise stores only as digests.
"""

import dataclasses
import json
import uuid
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import SealBroken, seal, unseal
from app.infra.mail import MailMessage
from app.jobs.claims import Claim
from app.jobs.deps import JobSender
from app.jobs.exceptions import PermanentJobError
from app.jobs.runner import Done, JobContext

SEND_EMAIL = "send_email"


async def send_later(
    sender: JobSender,
    session: AsyncSession,
    message: MailMessage,
    *,
    secret: str,
    owner_id: uuid.UUID | None = None,
) -> None:
    """Queue `message` in the request's transaction; it goes out only if that commits."""
    sealed = seal(json.dumps(dataclasses.asdict(message)).encode(), secret=secret)
    await sender.enqueue(session, task=SEND_EMAIL, args={"sealed": sealed}, owner_id=owner_id)


def message_id(job_id: uuid.UUID, sender_address: str) -> str:
    """A Message-ID that is the same on every attempt of one job."""
    domain = parseaddr(sender_address)[1].rpartition("@")[2] or "localhost"
    return f"<{job_id}@{domain}>"


async def send_email(ctx: JobContext, held: Claim) -> Done:
    """Unseal the job's message and send it (an SMTP failure raises: the job is retried)."""
    secret = ctx.settings.auth.jwt_secret.get_secret_value()
    try:
        fields = json.loads(unseal(str(held.args.get("sealed", "")), secret=secret))
    except SealBroken as exc:
        # JWT_SECRET changed since the mail was queued: no attempt can ever read it.
        raise PermanentJobError(
            "The mail could not be read (the service's secret changed)."
        ) from exc
    fields["message_id"] = message_id(held.job_id, ctx.settings.mail.sender)
    await ctx.mailer.send(MailMessage(**fields))
    return Done(result={"sent": True})
