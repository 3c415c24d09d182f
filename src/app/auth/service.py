"""Login, refresh-token rotation with re-use detection, session liveness and logout."""

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.exceptions import InvalidCredentials, InvalidToken
from app.auth.models import RefreshToken
from app.auth.schemas import TokenPair
from app.auth.throttle import LoginThrottle
from app.core.security import PasswordHasher, create_access_token, digest, new_secret
from app.core.settings_groups import AuthSettings
from app.db.base import utcnow
from app.users import service as users_service
from app.users.models import User

log = structlog.get_logger(__name__)

MAX_EMAIL_LENGTH = 320


async def authenticate(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    email: str,
    password: str,
) -> User:
    """Return the active user with these credentials, or raise the same 401 for every failure.

    An unknown email is verified against a dummy hash, so it costs as long as a known one.
    """
    if not could_be_email(email):
        # No account can have it: never send it to the database, fail like any unknown email.
        await hasher.verify(password, None)
        raise InvalidCredentials
    await throttle.check(email)
    user = await users_service.get_by_email(session=session, email=email)
    # End the read before hashing (~100 ms): no connection, and on SQLite no lock, is held
    # while the password is checked.
    await session.commit()
    valid, updated_hash = await hasher.verify(password, user.hashed_password if user else None)
    if user is None or not valid or not user.is_active:
        await throttle.record_failure(email)
        # The error response rolls the request's transaction back; the failure must stay counted.
        await session.commit()
        log.info("login_failed")
        raise InvalidCredentials
    if updated_hash is not None:  # e.g. a bcrypt hash from before: now Argon2id
        user.hashed_password = updated_hash
    await throttle.clear(email)
    return user


def could_be_email(value: str) -> bool:
    """Whether `value` fits the email column and has no control characters."""
    return len(value) <= MAX_EMAIL_LENGTH and value.isprintable()


async def issue_tokens(
    *,
    session: AsyncSession,
    auth: AuthSettings,
    user: User,
    family_id: uuid.UUID | None = None,
    authenticated_at: datetime | None = None,
) -> TokenPair:
    """Sign an access token and store a new refresh token (a new family unless given).

    A new family is a login (authenticated now); a rotation passes on the family's login time.
    """
    now = utcnow()
    family_id = family_id or uuid.uuid4()
    authenticated_at = authenticated_at or now
    access = create_access_token(
        subject=user.id,
        session_id=family_id,
        auth=auth,
        now=now,
        authenticated_at=authenticated_at,
    )
    refresh = new_secret()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=digest(refresh),
            created_at=now,
            authenticated_at=authenticated_at,
            expires_at=now + timedelta(seconds=auth.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(access_token=access.token, expires_in=access.expires_in, refresh_token=refresh)


async def _revoke_families(
    session: AsyncSession, *conditions: ColumnElement[bool], now: datetime
) -> None:
    await session.execute(
        update(RefreshToken)
        .where(*conditions, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def _revoke_reused_family(session: AsyncSession, stored: RefreshToken, now: datetime) -> None:
    """A retired token came back: it was copied. Revoke its family, whatever its age."""
    await _revoke_families(session, RefreshToken.family_id == stored.family_id, now=now)
    # Committed before the 401: the failed request must not roll the revocation back.
    await session.commit()
    log.warning("refresh_token_reuse", user_id=str(stored.user_id))


async def _claim(session: AsyncSession, stored: RefreshToken, now: datetime) -> bool:
    """Mark the token rotated; False when a concurrent request rotated it first."""
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == stored.id, RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def rotate(*, session: AsyncSession, auth: AuthSettings, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; a re-used token revokes its whole family."""
    now = utcnow()
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    unused = stored is not None and stored.rotated_at is None
    if stored is None or (unused and (stored.revoked_at is not None or stored.expires_at <= now)):
        raise InvalidToken("The refresh token is invalid, revoked or expired.")
    if not unused or not await _claim(session, stored, now=now):
        await _revoke_reused_family(session, stored, now=now)
        raise InvalidToken("The refresh token was already used; the session is revoked.")
    user = await users_service.get(session=session, user_id=stored.user_id)
    if user is None or not user.is_active:
        raise InvalidToken
    return await issue_tokens(
        session=session,
        auth=auth,
        user=user,
        family_id=stored.family_id,
        authenticated_at=stored.authenticated_at,
    )


# Built once: constructing a statement costs more Python than running this one.
_LIVE_SESSION_USER = select(User).where(
    User.id == bindparam("user_id"),
    User.is_active,
    select(RefreshToken.id)
    .where(
        RefreshToken.family_id == bindparam("session_id"),
        RefreshToken.user_id == User.id,
        RefreshToken.revoked_at.is_(None),
    )
    .exists(),
)


async def session_user(
    *, session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> User | None:
    """Return the active user whose login session `session_id` is live; None once revoked.

    One statement: the user and the liveness of the session (a refresh-token family with a
    token that is not revoked) are checked together, on every request with an access token.
    """
    params = {"user_id": user_id, "session_id": session_id}
    return await session.scalar(_LIVE_SESSION_USER, params)


async def logout(*, session: AsyncSession, refresh_token: str) -> None:
    """Revoke the family of this refresh token (unknown tokens are ignored)."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == digest(refresh_token))
    )
    if family_id is not None:
        await _revoke_families(session, RefreshToken.family_id == family_id, now=utcnow())


async def logout_all(
    *, session: AsyncSession, user_id: uuid.UUID, keep_session: uuid.UUID | None = None
) -> None:
    """Revoke every refresh token family of the user, except `keep_session` when given."""
    conditions = [RefreshToken.user_id == user_id]
    if keep_session is not None:
        conditions.append(RefreshToken.family_id != keep_session)
    await _revoke_families(session, *conditions, now=utcnow())
