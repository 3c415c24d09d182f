"""Single-use action tokens: password reset, email verification and email change.

Each is mailed to an address, stored only as a digest, expires, and is spent once. A token
stays bound to the address it was sent to: verification and reset tokens die when the account's
email changes; an email-change token carries the new address it proves.

Every flow that ends the account's access or changes its email (a password reset or change,
logout-all, deactivation, an email change) voids all of the user's outstanding tokens, whatever
their purpose (`void_every_action_token`): a token mailed before such an event, to whatever
address, never acts on the account after it.
"""

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.exceptions import InvalidActionToken
from app.auth.models import ActionToken
from app.core.security import digest, new_secret
from app.db.base import utcnow
from app.users import service as users_service
from app.users.models import User

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name, not a secret  # nosec B105
EMAIL_VERIFICATION = "email_verification"
EMAIL_CHANGE = "email_change"
# Anyone may ask for a reset of any address, and a caller for a verification mail, as often as
# the rate limiter lets each client address: from many addresses, one mail per asking floods
# the owner's mailbox. One token of each of these purposes per account per interval; the last
# one mailed stays good meanwhile.
RESEND_INTERVAL = timedelta(seconds=60)


async def create_action_token(
    *,
    session: AsyncSession,
    user: User,
    purpose: str,
    ttl_seconds: int,
    email: str | None = None,
) -> str:
    """Store a single-use token for `purpose` and return it (it is stored only as a digest).

    The token is bound to `email`: the account's current address unless another is given.
    """
    token = new_secret()
    now = utcnow()
    session.add(
        ActionToken(
            user_id=user.id,
            purpose=purpose,
            email=email or user.email,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return token


async def start_password_reset(
    *, session: AsyncSession, email: str, ttl_seconds: int
) -> tuple[str, str] | None:
    """Issue a reset token for an active account with a password: (its email, the token).

    None for anyone else, and when one was issued less than `RESEND_INTERVAL` ago (it is
    still good); the caller answers the same either way.
    """
    user = await users_service.get_by_email(session=session, email=email)
    if user is not None:  # concurrent requests for the account take turns from here
        user = await users_service.lock(session=session, user_id=user.id)
    if user is None or not user.is_active or user.hashed_password is None:
        return None
    if await _mailed_recently(session, user, PASSWORD_RESET):
        return None
    token = await create_action_token(
        session=session, user=user, purpose=PASSWORD_RESET, ttl_seconds=ttl_seconds
    )
    return user.email, token


async def start_email_verification(
    *, session: AsyncSession, user: User, ttl_seconds: int
) -> str | None:
    """Issue a verification token for the user's current email; None when already verified.

    None too when one was issued less than `RESEND_INTERVAL` ago (it is still good).
    """
    if user.email_verified_at is not None:
        return None
    await users_service.lock(session=session, user_id=user.id)  # concurrent askers take turns
    if await _mailed_recently(session, user, EMAIL_VERIFICATION):
        return None
    return await create_action_token(
        session=session, user=user, purpose=EMAIL_VERIFICATION, ttl_seconds=ttl_seconds
    )


async def _mailed_recently(session: AsyncSession, user: User, purpose: str) -> bool:
    """Whether an unspent token of `purpose` went to the account's email in `RESEND_INTERVAL`.

    The caller holds the user's lock, so concurrent requests see each other's token, its mail
    still on its way included. A token whose mail failed is withdrawn (`withdraw_action_token`)
    and so no longer counts: the job's retry mails a new one.
    """
    since = utcnow() - RESEND_INTERVAL
    recent = await session.scalar(
        select(ActionToken.id)
        .where(
            ActionToken.user_id == user.id,
            ActionToken.purpose == purpose,
            ActionToken.email == user.email,
            ActionToken.used_at.is_(None),
            ActionToken.created_at > since,
        )
        .limit(1)
    )
    return recent is not None


async def withdraw_action_token(*, session: AsyncSession, token: str) -> None:
    """Spend a token that was issued but whose mail failed: nobody got it, nobody may use it."""
    await session.execute(
        update(ActionToken)
        .where(ActionToken.token_hash == digest(token), ActionToken.used_at.is_(None))
        .values(used_at=utcnow())
    )


async def use_action_token(*, session: AsyncSession, token: str, purpose: str) -> User:
    """Spend a single-use token and return its user; raise when unknown, used or expired.

    The token must still be bound to the account's current email.
    """
    user, _ = await _spend(session, token, purpose)
    return user


async def _spend(session: AsyncSession, token: str, purpose: str) -> tuple[User, ActionToken]:
    now = utcnow()
    stored = await session.scalar(
        select(ActionToken).where(
            ActionToken.token_hash == digest(token), ActionToken.purpose == purpose
        )
    )
    if stored is None or stored.used_at is not None or stored.expires_at <= now:
        raise InvalidActionToken
    # The user's row before any token row, as every credential write takes them (a reset
    # racing a password change would otherwise deadlock: each holds what the other waits for).
    user = await users_service.lock(session=session, user_id=stored.user_id)
    spent = await session.execute(
        update(ActionToken)
        .where(ActionToken.id == stored.id, ActionToken.used_at.is_(None))
        .values(used_at=now)
    )
    # An email-change token carries the new address, not the current one; what ties it to the
    # account as it was is that every email change (and every flow that ends the account's
    # access) voids every outstanding token, this one included.
    bound = stored.email == (user.email if user else None) or purpose == EMAIL_CHANGE
    if spent.rowcount != 1 or user is None or not user.is_active or not bound:  # type: ignore[attr-defined]
        raise InvalidActionToken
    return user, stored


async def void_action_tokens(*, session: AsyncSession, user_id: uuid.UUID, purpose: str) -> None:
    """Spend every outstanding token of the user for `purpose` (none of them works after)."""
    await session.execute(
        update(ActionToken)
        .where(
            ActionToken.user_id == user_id,
            ActionToken.purpose == purpose,
            ActionToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )


async def void_every_action_token(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Spend every outstanding token of the user, whatever its purpose (none works after)."""
    await session.execute(
        update(ActionToken)
        .where(ActionToken.user_id == user_id, ActionToken.used_at.is_(None))
        .values(used_at=utcnow())
    )


async def spend_reset_token(*, session: AsyncSession, token: str) -> User:
    """Spend a password-reset token and void every other token of its user; return the user."""
    user = await use_action_token(session=session, token=token, purpose=PASSWORD_RESET)
    # At once, before the password is hashed (~100 ms): a reset racing this one with another
    # token of the account finds it spent.
    await void_every_action_token(session=session, user_id=user.id)
    return user


async def start_email_change(
    *, session: AsyncSession, user: User, new_email: str, ttl_seconds: int
) -> str:
    """Issue a token that proves control of `new_email`; earlier change requests lapse."""
    await void_action_tokens(session=session, user_id=user.id, purpose=EMAIL_CHANGE)
    return await create_action_token(
        session=session, user=user, purpose=EMAIL_CHANGE, ttl_seconds=ttl_seconds, email=new_email
    )


async def spend_email_change_token(*, session: AsyncSession, token: str) -> tuple[User, str]:
    """Spend an email-change token; return its user and the new address it proves."""
    user, stored = await _spend(session, token, EMAIL_CHANGE)
    return user, stored.email
