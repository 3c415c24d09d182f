"""Removing what can no longer be used: expired tokens, old login failures and known clients."""

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.auth.models import ActionToken, LoginFailure, LoginKnownClient, RefreshToken

_Sibling = aliased(RefreshToken)


async def purge_expired(
    *,
    session: AsyncSession,
    now: datetime,
    login_window_seconds: int,
    login_known_client_days: int,
) -> dict[str, int]:
    """Delete expired tokens, failures older than the login window, clients no longer known.

    Refresh tokens go by family (login session), once every token of it expired, revoked or
    not: a retired token's row is what lets its replay revoke the family, so it stays while
    any token of the family may still be used. A failure past the window no longer slows any
    login; a client whose last login is older than `login_known_client_days` waits like any
    other (with 0, every one).
    """
    cutoff = now - timedelta(seconds=login_window_seconds)
    known_since = now - timedelta(days=login_known_client_days)
    live_sibling = (
        select(_Sibling.id)
        .where(_Sibling.family_id == RefreshToken.family_id, _Sibling.expires_at > now)
        .exists()
    )
    statements = {
        "refresh_tokens": delete(RefreshToken).where(~live_sibling),
        "action_tokens": delete(ActionToken).where(ActionToken.expires_at <= now),
        "login_failures": delete(LoginFailure).where(LoginFailure.created_at <= cutoff),
        "login_known_clients": delete(LoginKnownClient).where(
            LoginKnownClient.last_login_at <= known_since
        ),
    }
    counts = {}
    for name, statement in statements.items():
        result = await session.execute(statement.execution_options(synchronize_session=False))
        counts[name] = int(result.rowcount)  # type: ignore[attr-defined]
    return counts
