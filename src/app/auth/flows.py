"""Account flows that span users and sessions: one named home for each, called by routers.

Each flow is a service-level function (keyword-only, session first, flushes, never commits).
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.users import service as users_service
from app.users.models import User


async def change_password(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    user: User,
    current_password: str,
    new_password: str,
    keep_session: uuid.UUID | None,
) -> None:
    """Replace a proven password; every session of the account but `keep_session` is revoked."""
    await users_service.change_password(
        session=session,
        hasher=hasher,
        user=user,
        current_password=current_password,
        new_password=new_password,
    )
    await auth_service.logout_all(session=session, user_id=user.id, keep_session=keep_session)


async def reset_password(
    *, session: AsyncSession, hasher: PasswordHasher, token: str, new_password: str
) -> None:
    """Set a new password with a reset token; every session of the account is revoked."""
    user = await auth_service.spend_reset_token(session=session, token=token)
    await users_service.set_password(
        session=session, hasher=hasher, user=user, password=new_password
    )
    await auth_service.logout_all(session=session, user_id=user.id)


async def verify_email(*, session: AsyncSession, token: str) -> User:
    """Mark the user's current email verified with a verification token; return the user."""
    user = await auth_service.use_action_token(
        session=session, token=token, purpose=auth_service.EMAIL_VERIFICATION
    )
    user.email_verified_at = utcnow()
    await session.flush()
    return user
