"""Login, refresh-token rotation with re-use detection, session liveness and logout.

Every transaction here that writes a user's refresh tokens (a login, a rotation, a logout or
any other revocation) first takes the user's credential lock (`users_service.lock`): they run
one at a time per user, so a revocation never misses a token a rotation in flight inserts, and
a rotation never goes ahead after a revocation (docs/auth.md, "Revocation and requests in
flight").
"""

import uuid
from datetime import datetime, timedelta
from typing import NoReturn

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
from app.users.schemas import normalize_email

log = structlog.get_logger(__name__)


async def authenticate(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    email: str,
    password: str,
) -> User:
    """Return the active user with these credentials, or raise the same 401 for every failure.

    `email` is as the client typed it: it is normalised as registration stored it, so every
    equivalent spelling finds the account and counts against the same throttle. An unknown
    email is verified against a dummy hash, so it costs as long as a known one.
    The attempt counts as a failed login from the start; a success forgets this client's.
    On success the user's credential lock is held, for the tokens the login issues.
    """
    try:
        email = normalize_email(email)
    except ValueError:
        # No account can have it: never send it to the database, fail like any unknown email.
        await hasher.verify(password, None)
        raise InvalidCredentials from None
    user = await users_service.get_by_email(session=session, email=email)
    # Counted as failed before the password is checked, in the step that checks the limit:
    # concurrent guesses cannot all pass the limit before any of them is counted.
    await throttle.reserve(email, user.id if user else None)
    # Before hashing (~100 ms): the count is published (and stays although the answer is 401),
    # and no connection, nor on SQLite the write lock, is held while the password is checked.
    await session.commit()
    checked_hash = user.hashed_password if user else None
    valid, updated_hash = await hasher.verify(password, checked_hash)
    if user is None or not valid or not user.is_active:
        log.info("login_failed")
        raise InvalidCredentials
    valid, updated_hash = await _still_valid(
        session,
        user,
        hasher=hasher,
        email=email,
        password=password,
        checked=(checked_hash, updated_hash),
    )
    if not valid:
        log.info("login_failed", reason="changed_meanwhile")
        raise InvalidCredentials
    if updated_hash is not None:  # e.g. a bcrypt hash from before: now Argon2id
        user.hashed_password = updated_hash
    await throttle.clear(email, user.id)
    return user


async def _still_valid(
    session: AsyncSession,
    user: User,
    *,
    hasher: PasswordHasher,
    email: str,
    password: str,
    checked: tuple[str | None, str | None],
) -> tuple[bool, str | None]:
    """Take the user's credential lock; whether `email` and the password still open the account.

    A password reset, a deactivation, a deletion or an email change may have committed while
    the password was hashed, unlocked: the session this login would start must not outlive it,
    nor may its success make this client known to an address the account has left. `checked`
    is the hash the password was verified against and the upgrade it called for; returned is
    the upgrade still to store.
    """
    checked_hash, updated_hash = checked
    locked = await users_service.lock(session=session, user_id=user.id)
    if locked is None or not locked.is_active or locked.email != email:
        return False, None
    if locked.hashed_password == checked_hash:
        return True, updated_hash
    # The hash changed while the password was checked. A login upgrading an outdated hash
    # writes a new string for the same password, so the strings tell nothing: verifying again
    # (in a worker thread, under the lock; rare) tells a re-hash from a real change.
    return await hasher.verify(password, locked.hashed_password)


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
    The caller holds the user's credential lock and checked, after taking it, that the user may
    have the token (`authenticate`, `rotate`).
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
    session: AsyncSession, user_id: uuid.UUID, *conditions: ColumnElement[bool], now: datetime
) -> None:
    """Revoke the user's live tokens that match `conditions`.

    The credential lock first: a login or rotation of this user in flight commits before the
    UPDATE runs, which then sees its new token (under READ COMMITTED an UPDATE sees only rows
    committed when it starts); one that starts later waits, then sees the revocation.
    """
    await users_service.lock(session=session, user_id=user_id)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, *conditions, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def _revoke_reused_family(session: AsyncSession, stored: RefreshToken, now: datetime) -> None:
    """A retired token came back: it was copied. Revoke its family, whatever its age."""
    await _revoke_families(
        session, stored.user_id, RefreshToken.family_id == stored.family_id, now=now
    )
    # Committed before the 401: the failed request must not roll the revocation back.
    await session.commit()
    log.warning("refresh_token_reuse", user_id=str(stored.user_id))


async def _claim(session: AsyncSession, stored: RefreshToken, now: datetime) -> bool:
    """Mark the token rotated; False when it was rotated or revoked since it was read.

    Sent after the credential lock, so it sees a revocation that committed meanwhile.
    """
    claimed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == stored.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def _refuse(session: AsyncSession, stored: RefreshToken, *, read_again: bool) -> NoReturn:
    """Refuse a token that cannot be claimed: revoked, or re-used (which revokes its family)."""
    if read_again:  # the claim failed: tell a revocation meanwhile from a concurrent rotation
        await session.refresh(stored, ["rotated_at", "revoked_at"])
    if stored.rotated_at is None:
        raise InvalidToken("The refresh token is invalid, revoked or expired.")
    await _revoke_reused_family(session, stored, now=utcnow())
    raise InvalidToken("The refresh token was already used; the session is revoked.")


async def rotate(*, session: AsyncSession, auth: AuthSettings, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; a re-used token revokes its whole family."""
    now = utcnow()
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    unused = stored is not None and stored.rotated_at is None
    if stored is None or (unused and (stored.revoked_at is not None or stored.expires_at <= now)):
        raise InvalidToken("The refresh token is invalid, revoked or expired.")
    # Before any write, and replacing the user's load: what was read above may be stale,
    # what is checked from here on is not.
    user = await users_service.lock(session=session, user_id=stored.user_id)
    if user is None or not user.is_active:
        raise InvalidToken
    if not unused or not await _claim(session, stored, now=now):
        await _refuse(session, stored, read_again=unused)
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
    found = (
        await session.execute(
            select(RefreshToken.user_id, RefreshToken.family_id).where(
                RefreshToken.token_hash == digest(refresh_token)
            )
        )
    ).one_or_none()
    if found is not None:
        user_id, family_id = found
        await _revoke_families(session, user_id, RefreshToken.family_id == family_id, now=utcnow())


async def logout_all(
    *, session: AsyncSession, user_id: uuid.UUID, keep_session: uuid.UUID | None = None
) -> None:
    """Revoke every refresh token family of the user, except `keep_session` when given."""
    conditions = [] if keep_session is None else [RefreshToken.family_id != keep_session]
    await _revoke_families(session, user_id, *conditions, now=utcnow())
