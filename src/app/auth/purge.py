"""Removing what can no longer be used: expired refresh and action tokens, old login failures."""

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ActionToken, LoginFailure, RefreshToken


async def purge_expired(
    *, session: AsyncSession, now: datetime, login_window_seconds: int
) -> dict[str, int]:
    """Delete expired tokens and failures older than the login window; count each kind.

    An expired refresh token is refused whether or not its row exists, so re-use detection
    loses nothing; a failure past the window no longer slows any login.
    """
    cutoff = now - timedelta(seconds=login_window_seconds)
    statements = {
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at <= now),
        "action_tokens": delete(ActionToken).where(ActionToken.expires_at <= now),
        "login_failures": delete(LoginFailure).where(LoginFailure.created_at <= cutoff),
    }
    counts = {}
    for name, statement in statements.items():
        result = await session.execute(statement.execution_options(synchronize_session=False))
        counts[name] = int(result.rowcount)  # type: ignore[attr-defined]
    return counts
