"""API keys: creation (shown once), listing, revocation and authentication.

Creating and revoking keys take the owner's credential lock first (`users_service.lock`), as
refresh tokens do: a revocation never misses a key created at the same moment.
"""

import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.api_keys.exceptions import ApiKeyNotFound, ExpiryInThePast, ExpiryTooLate
from app.api_keys.models import ApiKey
from app.core.security import digest, new_secret
from app.db.base import utcnow
from app.users import service as users_service
from app.users.models import User

KEY_PREFIX = "pfb"
# last_used_at is informational: writing it at most once a minute keeps key use read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _new_key() -> tuple[str, str]:
    prefix = f"{KEY_PREFIX}_{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{new_secret()}"


def _expiry(
    requested: datetime | None,
    *,
    now: datetime,
    default_ttl: timedelta,
    max_ttl: timedelta,
    parent: ApiKey | None,
) -> datetime:
    """The expiry of a new key: as asked, or the default; never past the maximum or the parent."""
    latest = now + max_ttl
    if parent is not None and parent.expires_at is not None:
        latest = min(latest, parent.expires_at)
    if requested is None:
        return min(now + default_ttl, latest)
    if requested <= now:
        raise ExpiryInThePast("expires_at must be in the future.")
    if requested > latest:
        raise ExpiryTooLate(
            f"expires_at may be at most {latest.isoformat()}"
            + (" (the expiry of the key that creates it)." if latest < now + max_ttl else ".")
        )
    return requested


async def create(
    *,
    session: AsyncSession,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None,
    now: datetime,
    default_ttl: timedelta,
    max_ttl: timedelta,
    parent: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user`; return it with the plaintext key, which is not stored.

    A key created by another key (`parent`) never outlives it and is revoked with it; its
    scopes are the caller's to check (a key cannot grant more than it holds). The caller holds
    the user's credential lock and checked, after taking it, that the credential creating the
    key is still live (`is_live` for a parent).
    """
    expires_at = _expiry(
        expires_at, now=now, default_ttl=default_ttl, max_ttl=max_ttl, parent=parent
    )
    prefix, key = _new_key()
    api_key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=prefix,
        key_hash=digest(key),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        parent_id=parent.id if parent is not None else None,
        created_at=now,
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_keys(
    *, session: AsyncSession, user: User, limit: int, offset: int, within: ApiKey | None = None
) -> tuple[Sequence[ApiKey], int]:
    """Return one page of the user's keys that are not revoked, newest first, and the total.

    `within`, the key a request came with, narrows them to it and the keys it created.
    """
    live = select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
    if within is not None:
        live = live.where(ApiKey.id.in_(await _lineage(session, [within.id])))
    total = await session.scalar(select(func.count()).select_from(live.subquery())) or 0
    page = await session.scalars(
        live.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit).offset(offset)
    )
    return page.all(), total


async def _lineage(session: AsyncSession, roots: list[uuid.UUID]) -> set[uuid.UUID]:
    """The ids of `roots` and of every live key they created, directly or through another."""
    found = set(roots)
    generation = roots
    while generation:
        children = await session.scalars(
            select(ApiKey.id).where(ApiKey.parent_id.in_(generation), ApiKey.revoked_at.is_(None))
        )
        generation = [key_id for key_id in children.all() if key_id not in found]
        found.update(generation)
    return found


async def is_live(*, session: AsyncSession, key_id: uuid.UUID, now: datetime) -> bool:
    """Whether the key is neither revoked nor expired, as committed when this is sent."""
    row = (
        await session.execute(
            select(ApiKey.revoked_at, ApiKey.expires_at).where(ApiKey.id == key_id)
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        return False
    return row.expires_at is None or row.expires_at > now


async def _revoke_with_descendants(
    session: AsyncSession, user_id: uuid.UUID, key_ids: list[uuid.UUID]
) -> None:
    # The lock first: a key being created from one of these commits before, and is found
    # among the descendants below; one created later sees its parent revoked.
    await users_service.lock(session=session, user_id=user_id)
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id.in_(await _lineage(session, key_ids)), ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


async def get(
    *, session: AsyncSession, user: User, key_id: uuid.UUID, within: ApiKey | None = None
) -> ApiKey:
    """Return one of the user's keys that is not revoked; 404 for anyone else's.

    `within`, the key a request came with, reaches only itself and the keys it created: a key
    never acts on its parent or on a broader key of the same user (404, as for a stranger's).
    """
    api_key = await session.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id or api_key.revoked_at is not None:
        raise ApiKeyNotFound(f"API key {key_id} was not found.")
    if within is not None and api_key.id not in await _lineage(session, [within.id]):
        raise ApiKeyNotFound(f"API key {key_id} was not found.")
    return api_key


async def revoke(
    *, session: AsyncSession, user: User, key_id: uuid.UUID, within: ApiKey | None = None
) -> None:
    """Revoke one of the user's keys and every key it created; 404 for anyone else's."""
    api_key = await get(session=session, user=user, key_id=key_id, within=within)
    await _revoke_with_descendants(session, user.id, [api_key.id])


async def revoke_all(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every key of the user (recovery, deactivation), those being created included."""
    await users_service.lock(session=session, user_id=user_id)
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


def _usable(api_key: ApiKey, user: User | None, now: datetime) -> bool:
    if user is None or not user.is_active or api_key.revoked_at is not None:
        return False
    return api_key.expires_at is None or api_key.expires_at > now


async def authenticate(*, session: AsyncSession, key: str) -> tuple[ApiKey, User] | None:
    """Return a valid key and its owner, or None (unknown, revoked or expired)."""
    now = utcnow()
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == digest(key))
        )
    ).one_or_none()
    if row is None or not _usable(*row, now):
        return None
    api_key, user = row
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        # The owner's lock before the key's row, the order every credential write keeps: a
        # request that writes the key then waits for the lock (to create a key, say) would
        # otherwise deadlock with a revocation that holds the lock and waits for the key.
        locked = await users_service.lock(session=session, user_id=user.id)
        # What committed while this waited decides: a key revoked or gone with its account
        # meanwhile (the update finds no row) is refused like any other, not a conflict.
        used = await session.execute(
            update(ApiKey)
            .where(ApiKey.id == api_key.id, ApiKey.revoked_at.is_(None))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        if locked is None or not locked.is_active or not used.rowcount:  # type: ignore[attr-defined]
            return None
        set_committed_value(api_key, "last_used_at", now)
        return api_key, locked
    return api_key, user
