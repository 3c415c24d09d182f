"""Fresh proof of identity before a sensitive change: the password now, or a recent login.

Changing the email or the password, or creating an API key from a session, is what an intruder
with a stolen token or a leaked API key would do first to keep the account. So those changes
need more than a valid credential: the current password (checked and throttled like a login),
or a login of the last `FRESH_LOGIN_SECONDS`. API keys can never change credentials.
"""

from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import Principal
from app.auth.exceptions import CredentialsChangeForbidden, FreshLoginRequired
from app.auth.throttle import LoginThrottle
from app.core.security import PasswordHasher
from app.users.exceptions import WrongPassword

log = structlog.get_logger(__name__)


async def check_password(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    principal: Principal,
    password: str,
) -> None:
    """Raise `WrongPassword` unless `password` is the caller's; failures count like logins."""
    user = principal.user
    await throttle.check(user.email)
    valid, _ = await hasher.verify(password, user.hashed_password)
    if not valid:
        await throttle.record_failure(user.email)
        # The error response rolls the request's transaction back; the failure must stay counted.
        await session.commit()
        log.info("password_check_failed", user_id=str(user.id))
        raise WrongPassword("The current password is incorrect.")
    await throttle.clear(user.email)


async def confirm_identity(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    principal: Principal,
    current_password: str | None,
    fresh_for: timedelta,
    now: datetime,
) -> None:
    """Raise unless the caller just proved who they are (see the module); never for API keys."""
    if principal.method == "api_key":
        raise CredentialsChangeForbidden(
            "API keys cannot change credentials; sign in with the account's password."
        )
    if current_password is not None:
        await check_password(
            session=session,
            hasher=hasher,
            throttle=throttle,
            principal=principal,
            password=current_password,
        )
        return
    login = principal.authenticated_at
    if login is None or now - login > fresh_for:
        raise FreshLoginRequired(
            "Confirm with current_password, or log in again and retry within "
            f"{int(fresh_for.total_seconds())} seconds."
        )
