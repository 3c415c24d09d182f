"""Jobs of the auth domain: the password-reset mail, whose account is looked up off the request.

The request answers the same whether or not the address has an account; the job finds out.
"""

import asyncio

import structlog

from app.auth import action_tokens, notifications
from app.jobs.claims import Claim
from app.jobs.mail import message_id
from app.jobs.runner import Done, JobContext

log = structlog.get_logger(__name__)

SEND_PASSWORD_RESET = "send_password_reset"  # noqa: S105 - a task name  # nosec B105


async def send_password_reset(ctx: JobContext, held: Claim) -> Done:
    """Issue and mail a reset token if the job's address has an account that can reset.

    The token is issued when the mail goes out, so no token waits in the queue. An attempt
    that fails to mail withdraws its token, which then neither works nor counts against the
    account's one mail per `RESEND_INTERVAL`: the job's retry mails a new one.
    """
    ttl = ctx.settings.auth.password_reset_ttl_seconds
    async with ctx.session_factory() as session:
        issued = await action_tokens.start_password_reset(
            session=session, email=str(held.args["email"]), ttl_seconds=ttl
        )
        await session.commit()
    if issued is None:
        return Done()  # no result either way: it would tell who has an account
    to, token = issued
    message = notifications.password_reset_message(to=to, token=token, ttl_seconds=ttl)
    sent_as = message_id(held.job_id, ctx.settings.mail.sender)
    try:
        await ctx.mailer.send(notifications.with_message_id(message, sent_as))
    except BaseException:
        # Cancelled too (the job's timeout, a worker stopping): the job runs again, and must
        # not find this unsent token counted as mailed. Shielded, so a cancellation cannot cut
        # the withdrawal short.
        await asyncio.shield(_withdraw(ctx, token))
        raise
    return Done()


async def _withdraw(ctx: JobContext, token: str) -> None:
    """Withdraw an unsent token; a failure is logged, the mail's failure is what is raised."""
    try:
        async with ctx.session_factory() as session:
            await action_tokens.withdraw_action_token(session=session, token=token)
            await session.commit()
    except Exception as exc:  # noqa: BLE001 - the send's own error matters more
        log.warning("reset_token_not_withdrawn", error=type(exc).__name__)
