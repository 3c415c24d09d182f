"""Work done after the response: what would otherwise reveal, by timing, who has an account."""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import action_tokens, notifications
from app.core.errors import AppError
from app.infra.mail import Mailer

log = structlog.get_logger(__name__)


async def send_password_reset(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    email: str,
    ttl_seconds: int,
) -> None:
    """Issue and mail a reset token if `email` has an account that can reset its password.

    Runs once the response is sent, in a session of its own (it commits its token), so the
    request costs the same for an address with an account and one without.
    """
    async with session_factory() as session:
        issued = await action_tokens.start_password_reset(
            session=session, email=email, ttl_seconds=ttl_seconds
        )
        await session.commit()
    if issued is None:
        return
    to, token = issued
    message = notifications.password_reset_message(to=to, token=token, ttl_seconds=ttl_seconds)
    try:
        await mailer.send(message)
    except AppError:
        log.warning("account_mail_not_sent", subject=message.subject)
