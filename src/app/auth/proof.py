"""Fresh proof of identity before a sensitive change: the password now, or a recent login.

Changing the email or the password, or creating an API key from a session, is what an intruder
with a stolen token or a leaked API key would do first to keep the account. So those changes
need more than a valid credential: the current password (checked and throttled like a login),
or a login of the last `FRESH_LOGIN_SECONDS`. API keys can never change credentials.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import LoginThrottleDep, Principal
from app.auth.exceptions import CredentialsChangeForbidden, FreshLoginRequired
from app.auth.throttle import LoginThrottle
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.deps import PasswordHasherDep, SessionDep
from app.users.exceptions import WrongPassword

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """Proves a caller's identity within one request (its session, hasher and throttle)."""

    session: AsyncSession
    hasher: PasswordHasher
    throttle: LoginThrottle

    async def check_password(self, principal: Principal, password: str) -> None:
        """Raise `WrongPassword` unless `password` is the caller's; failures count like logins."""
        user = principal.user
        # Counted as failed before the check, in the step that checks the limit (see login).
        await self.throttle.reserve(user.email)
        # Published before hashing, and kept although the error rolls the request back; no
        # connection, nor on SQLite the write lock, is held while the password is checked.
        await self.session.commit()
        valid, _ = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            log.info("password_check_failed", user_id=str(user.id))
            raise WrongPassword("The current password is incorrect.")
        await self.throttle.clear(user.email)

    async def confirm(
        self, principal: Principal, current_password: str | None, *, fresh_for: timedelta
    ) -> None:
        """Raise unless the caller just proved who they are (see the module); never API keys."""
        if principal.method == "api_key":
            raise CredentialsChangeForbidden(
                "API keys cannot change credentials; sign in with the account's password."
            )
        if current_password is not None:
            await self.check_password(principal, current_password)
            return
        login = principal.authenticated_at
        if login is None or utcnow() - login > fresh_for:
            raise FreshLoginRequired(
                "Confirm with current_password, or log in again and retry within "
                f"{int(fresh_for.total_seconds())} seconds."
            )


async def get_identity_check(
    session: SessionDep, hasher: PasswordHasherDep, throttle: LoginThrottleDep
) -> IdentityCheck:
    """Return the request's identity check (this client's throttle)."""
    return IdentityCheck(session=session, hasher=hasher, throttle=throttle)


IdentityCheckDep = Annotated[IdentityCheck, Depends(get_identity_check)]
