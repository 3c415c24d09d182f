"""Fresh proof of identity before a sensitive change: the password now, or a recent login.

Changing the email or the password, creating an API key from a session, deleting an account
and granting or taking away an account's access (a superuser's promotion, demotion,
deactivation, reactivation) are what an intruder with a stolen token or a leaked API key would
do first to keep the account, or to do the most harm. So they need more than a valid credential:
the current password (checked and throttled like a login), or a login of the last
`FRESH_LOGIN_SECONDS`. API keys can never do them, nor end the account's sessions: a key is a
narrower credential than a session, whatever its scopes.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys import service as api_keys_service
from app.auth import service as auth_service
from app.auth.deps import LoginThrottleDep, Principal
from app.auth.exceptions import (
    ApiKeyNotAllowed,
    FreshLoginRequired,
    InvalidToken,
    SuperuserRequired,
)
from app.auth.throttle import LoginThrottle
from app.core.openapi import described_problems
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.db.locks import lock_for_transaction
from app.deps import PasswordHasherDep, SessionDep, SettingsDep
from app.users import service as users_service
from app.users.exceptions import WrongPassword
from app.users.models import User

log = structlog.get_logger(__name__)


def require_session(principal: Principal) -> None:
    """Raise 403 `api_key_not_allowed` unless the caller signed in (a session, not an API key)."""
    if principal.method == "api_key":
        raise ApiKeyNotAllowed(
            "An API key cannot do this, whatever its scopes; sign in to the account."
        )


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """Proves a caller's identity within one request (its session, hasher and throttle).

    `fresh_for` is how recent a login proves the caller without the password
    (`FRESH_LOGIN_SECONDS`).
    """

    session: AsyncSession
    hasher: PasswordHasher
    throttle: LoginThrottle
    fresh_for: timedelta

    async def check_password(self, principal: Principal, password: str) -> None:
        """Raise `WrongPassword` unless `password` is the caller's; failures count like logins.

        A success is not counted here: `confirm` forgets the failure once it holds the account.
        """
        user = principal.user
        # Counted as failed before the check, in the step that checks the limit (see login).
        await self.throttle.reserve(user.email, user.id)
        # Published before hashing, and kept although the error rolls the request back; no
        # connection, nor on SQLite the write lock, is held while the password is checked.
        await self.session.commit()
        valid, _ = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            log.info("password_check_failed", user_id=str(user.id))
            raise WrongPassword("The current password is incorrect.")

    async def confirm(
        self,
        principal: Principal,
        current_password: str | None,
        *,
        fresh_for: timedelta | None = None,
        superuser: bool = False,
        turn: str | None = None,
    ) -> None:
        """Raise unless the caller just proved who they are (see the module); never API keys.

        `fresh_for` overrides the configured window (`timedelta(0)`: the password only). Once
        proven, the caller's credential lock is held for the change (`hold`); `superuser`: the
        caller must still be one then; `turn`: a lock (`db.locks`) taken before that one.
        A proof by password commits (`check_password`), which ends the transaction and its
        locks: every lock the change holds, and every check it relies on, comes after this.
        """
        require_session(principal)
        if current_password is not None:
            await self.check_password(principal, current_password)
        else:
            window = self.fresh_for if fresh_for is None else fresh_for
            login = principal.authenticated_at
            if login is None or utcnow() - login > window:
                raise FreshLoginRequired(
                    "Confirm with current_password, or log in again and retry within "
                    f"{int(window.total_seconds())} seconds."
                )
        if turn is not None:
            await lock_for_transaction(self.session, turn)
        proven = None if current_password is None else (self.hasher, current_password)
        await hold(self.session, principal, superuser=superuser, proven=proven)
        if current_password is not None:
            # Under the account's lock, with its email as committed: a success never makes a
            # client known to an address the account has left meanwhile (`app.auth.throttle`).
            await self.throttle.clear(principal.user.email, principal.user.id)


async def hold(
    session: AsyncSession,
    principal: Principal,
    *,
    superuser: bool = False,
    proven: tuple[PasswordHasher, str] | None = None,
) -> None:
    """Take the caller's credential lock, then check again what the request began with.

    The caller was authenticated, and proved itself, when the request began, unlocked; a
    password reset or change, logout-all, a deactivation, a demotion or the key's revocation
    may have committed since. The change this request makes would outlive it (a new password
    or email set after the owner recovered the account), so what the caller relies on is read
    again once the lock is held, which later revocations wait for: 401 if its session or key
    ended, the account was deactivated or its password changed; 403 if `superuser` and it no
    longer is one. `proven`: the hasher and the password the caller proved itself with, which
    tell a login's re-hash of the same password from a change (verified again).
    """
    user = principal.user
    checked_hash = user.hashed_password  # the lock below reloads `user` as committed
    locked = await users_service.lock(session=session, user_id=user.id)
    if principal.api_key is not None:
        live = await api_keys_service.is_live(
            session=session, key_id=principal.api_key.id, now=utcnow()
        )
    elif principal.session_id is not None:
        found = await auth_service.session_user(
            session=session, user_id=user.id, session_id=principal.session_id
        )
        live = found is not None
    else:  # an identity provider's token: the issuer ends its sessions, the account remains
        live = True
    if locked is None or not locked.is_active or not live:
        raise InvalidToken("The credentials were revoked while the request ran.")
    if locked.hashed_password != checked_hash and not await _same_password(locked, proven):
        raise InvalidToken("The account's password changed while the request ran.")
    if superuser and not locked.is_superuser:
        raise SuperuserRequired("Only superusers may do this.")


async def _same_password(locked: User, proven: tuple[PasswordHasher, str] | None) -> bool:
    """Whether the password proven is still the account's, whose hash changed meanwhile.

    Without a password (a recent login, a key) nothing tells a re-hash from a change: refused,
    and a retry finds the hash unchanged.
    """
    if proven is None:
        return False
    hasher, password = proven
    valid, _ = await hasher.verify(password, locked.hashed_password)
    return valid


async def get_identity_check(
    session: SessionDep,
    hasher: PasswordHasherDep,
    throttle: LoginThrottleDep,
    settings: SettingsDep,
) -> IdentityCheck:
    """Return the request's identity check (this client's throttle)."""
    fresh_for = timedelta(seconds=settings.auth.fresh_login_seconds)
    return IdentityCheck(session=session, hasher=hasher, throttle=throttle, fresh_for=fresh_for)


IdentityCheckDep = Annotated[IdentityCheck, Depends(get_identity_check)]

# What the checks answer, for the OpenAPI document of the routes that make them.
_NO_CREDENTIALS = "no valid credentials (`not_authenticated`, `invalid_token`)"
_WRONG_PASSWORD = "a wrong `current_password` (`wrong_password`)"  # noqa: S105  # nosec B105
_STALE = "no `current_password` and no login within FRESH_LOGIN_SECONDS (`fresh_login_required`)"
_API_KEY = "an API key, which may never do this whatever its scopes (`api_key_not_allowed`)"
_NO_SCOPE = "credentials without a scope it needs (`insufficient_scope`)"
_NOT_SUPERUSER = "a caller who is not a superuser (`superuser_required`)"


def _any_of(reasons: list[str]) -> str:
    return "; or ".join(["; ".join(reasons[:-1]), reasons[-1]])


def session_only_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses of a route that refuses API keys (`require_session`)."""
    return described_problems(
        {
            401: f"Unauthorized: {_NO_CREDENTIALS}.",
            403: f"Forbidden: {_API_KEY}; or {_NO_SCOPE}.",
            **dict.fromkeys(status_codes, "Problem"),
        }
    )


def proof_responses(
    *status_codes: int, fresh: bool = True, superuser: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The problem responses of a route that calls `IdentityCheck.confirm`, and `status_codes`.

    `fresh=False` for a route that takes the password only; `superuser` for an admin route. A
    wrong password counts against the account's login throttle: 429 too.
    """
    unauthorized = [_NO_CREDENTIALS, _WRONG_PASSWORD, *([_STALE] if fresh else [])]
    forbidden = [_API_KEY, _NO_SCOPE, *([_NOT_SUPERUSER] if superuser else [])]
    return described_problems(
        {
            401: f"Unauthorized: {_any_of(unauthorized)}.",
            403: f"Forbidden: {_any_of(forbidden)}.",
            **dict.fromkeys((429, *status_codes), "Problem"),
        }
    )
