"""User accounts: look-up, registration, changes and deletion."""

import uuid
from collections.abc import Sequence

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.security import PasswordHasher
from app.users.exceptions import EmailTaken, LastSuperuser, UserNotFound
from app.users.models import User
from app.users.schemas import normalize_email

log = structlog.get_logger(__name__)


async def get(*, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """Return the user with this id, or None."""
    return await session.get(User, user_id)


async def lock(*, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """Lock the user's row until the transaction ends and return it as committed; None if gone.

    Every transaction that issues, rotates or revokes the user's credentials (refresh tokens,
    API keys) takes this lock first, so they run one after the other: a revocation waits for
    a rotation in flight and then sees its new token, and a rotation that comes after sees
    the revocation. Only statements sent after this one see what the holder committed, so
    what the caller checks, it checks afterwards. `FOR NO KEY UPDATE` leaves rows that merely
    reference the user (an item being created) free; on SQLite, whose writers already run
    one at a time (`BEGIN IMMEDIATE`), there is no such clause and none is sent.
    """
    statement = (
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(statement)


async def get_by_email(*, session: AsyncSession, email: str) -> User | None:
    """Return the user with this (normalised) email, or None."""
    return await session.scalar(select(User).where(User.email == email))


async def get_by_subject(*, session: AsyncSession, subject: str) -> User | None:
    """Return the user linked to an external identity provider's subject, or None."""
    return await session.scalar(select(User).where(User.external_subject == subject))


async def list_users(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[Sequence[User], int]:
    """Return one page of users, oldest first, and the total count."""
    total = await session.scalar(select(func.count()).select_from(User)) or 0
    page = await session.scalars(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return page.all(), total


async def _insert(session: AsyncSession, user: User) -> User:
    try:
        # A savepoint, so a duplicate email leaves the request's transaction usable.
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise EmailTaken(f"An account with {user.email} already exists.") from exc
    return user


async def create(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str | None,
    full_name: str | None = None,
    is_superuser: bool = False,
    external_subject: str | None = None,
) -> User:
    """Register a user; raise `EmailTaken` when the email is in use."""
    if await get_by_email(session=session, email=email) is not None:
        raise EmailTaken(f"An account with {email} already exists.")
    hashed = await hasher.hash(password) if password is not None else None
    user = User(
        email=email,
        hashed_password=hashed,
        full_name=full_name,
        is_superuser=is_superuser,
        external_subject=external_subject,
    )
    return await _insert(session, user)


async def update(*, session: AsyncSession, user: User, changes: dict[str, object]) -> User:
    """Apply field changes; a new email clears verification and must be free."""
    new_email = changes.pop("email", None)
    if isinstance(new_email, str) and new_email != user.email:
        if await get_by_email(session=session, email=new_email) is not None:
            raise EmailTaken(f"An account with {new_email} already exists.")
        user.email = new_email
        user.email_verified_at = None
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise EmailTaken("That email is already in use.") from exc
    return user


async def set_password(
    *, session: AsyncSession, hasher: PasswordHasher, user: User, password: str
) -> None:
    """Replace the user's password hash."""
    user.hashed_password = await hasher.hash(password)
    await session.flush()


async def delete(*, session: AsyncSession, user: User) -> None:
    """Delete the account; its tokens and keys go with it (ON DELETE CASCADE)."""
    await session.delete(user)
    await session.flush()


# The lock (`db.locks`) that changes which may take a superuser away hold while they check and
# make it: two superusers demoting each other at once cannot both pass, and each sees the
# other's change committed.
SUPERUSERS_TURN = "superusers"


async def keep_a_superuser(*, session: AsyncSession, leaving: uuid.UUID) -> None:
    """Raise `LastSuperuser` if `leaving` is the only active superuser (it is to be removed).

    The caller holds `SUPERUSERS_TURN` for the rest of its transaction, taken before any row
    lock (`IdentityCheck.confirm`, after the proof's commit, which would release it).
    """
    active = await session.scalars(
        select(User.id).where(User.is_superuser, User.is_active).limit(2)
    )
    if list(active) == [leaving]:
        raise LastSuperuser(
            "This is the only active superuser; make another one first, or nobody could "
            "administer the service."
        )


async def lock_target(*, session: AsyncSession, user: User) -> User:
    """Lock the account a change acts on and reload it as committed; `UserNotFound` if gone.

    What the change decides from (is it active, a superuser?) is read here, after the proof,
    which commits: the account as loaded when the request began may have changed since.
    """
    locked = await lock(session=session, user_id=user.id)
    if locked is None:
        raise UserNotFound(f"User {user.id} was not found.")
    return locked


async def ensure_superuser(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    email: str,
    password: str,
) -> None:
    """Create the first superuser at start-up, only while no superuser exists at all.

    Once one exists, the settings are ignored: renaming it, or changing its password, must not
    bring the configured account back. An existing account with the configured email is never
    promoted: anyone may have registered it.
    """
    email = normalize_email(email)
    async with session_factory() as session:
        if await session.scalar(select(User.id).where(User.is_superuser).limit(1)) is not None:
            return
        if await get_by_email(session=session, email=email) is not None:
            log.warning("superuser_not_created", reason="email_taken")
            return
        try:
            await create(
                session=session, hasher=hasher, email=email, password=password, is_superuser=True
            )
            await session.commit()
        except EmailTaken:
            return  # another worker created it at the same moment
    log.info("superuser_created", email=email)
