"""Idempotency keys: claim a key, store the response with the request's work, or release it."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency.exceptions import IdempotencyKeyInProgress, IdempotencyKeyReused
from app.idempotency.models import IdempotencyKey

# A claim still "in progress" after this long belongs to a request that died (a crashed
# worker never releases it): another request may take the key over. Completion is
# conditional on the claim, so even a very slow first request cannot create a second resource.
CLAIM_LEASE = timedelta(seconds=60)  # the default; the app uses twice the request deadline
# The response headers that describe the result; the middleware adds the rest on replay.
STORED_HEADERS = ("content-type", "location", "etag")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What makes two requests "the same request": method, target and body digest."""

    method: str
    path: str
    body_sha256: str

    @classmethod
    def of(cls, *, method: str, path: str, body: bytes) -> Self:
        """Return the fingerprint of a request."""
        return cls(method=method, path=path, body_sha256=hashlib.sha256(body).hexdigest())

    def matches(self, record: IdempotencyKey) -> bool:
        """Whether `record` was made by the same request."""
        return (self.method, self.path, self.body_sha256) == (
            record.method,
            record.path,
            record.body_sha256,
        )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as stored for replay."""

    status_code: int
    headers: dict[str, str]
    body: bytes


def _replaceable(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Rows that no longer hold their key: expired, or claims abandoned past the lease."""
    return or_(
        IdempotencyKey.expires_at <= now,
        and_(IdempotencyKey.completed_at.is_(None), IdempotencyKey.created_at <= now - lease),
    )


def is_replaceable(
    record: IdempotencyKey, now: datetime, *, lease: timedelta = CLAIM_LEASE
) -> bool:
    """Whether the key held by `record` is free again (the Python twin of `_replaceable`)."""
    if record.expires_at <= now:
        return True
    return record.completed_at is None and record.created_at <= now - lease


async def get(*, session: AsyncSession, user_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    """Return the row of `key` for `user_id`, read afresh from the database."""
    return await session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )


async def claim(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    key: str,
    fingerprint: Fingerprint,
    now: datetime,
    ttl: timedelta,
    lease: timedelta = CLAIM_LEASE,
) -> tuple[IdempotencyKey, bool]:
    """Claim `key` for this request; return the row and whether this request now holds it.

    When another request holds the key, its row is returned with False. Expired rows and
    abandoned claims are replaced. The caller commits, so that other workers see the claim.
    """
    record = await get(session=session, user_id=user_id, key=key)
    if record is not None and not is_replaceable(record, now, lease=lease):
        return record, False
    if record is not None:
        # Conditional: of two requests replacing the same row, one deletes it and inserts;
        # the other deletes nothing and then loses the insert on the unique constraint.
        session.expunge(record)
        await session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.id == record.id, _replaceable(now, lease))
            .execution_options(synchronize_session=False)
        )
    claimed = IdempotencyKey(
        user_id=user_id,
        key=key,
        method=fingerprint.method,
        path=fingerprint.path,
        body_sha256=fingerprint.body_sha256,
        created_at=now,
        expires_at=now + ttl,
    )
    try:
        async with session.begin_nested():
            session.add(claimed)
    except IntegrityError:
        # Another worker inserted the same (caller, key) first: its row decides.
        winner = await get(session=session, user_id=user_id, key=key)
        if winner is None:  # it was released in between: report it as busy, a retry is free
            raise IdempotencyKeyInProgress from None
        return winner, False
    return claimed, True


def stored_response(record: IdempotencyKey, fingerprint: Fingerprint) -> StoredResponse:
    """Return the response stored for a live key, or raise 422 (other request) or 409 (running)."""
    if not fingerprint.matches(record):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request (method, path or body)."
        )
    if record.completed_at is None or record.response_status is None:
        raise IdempotencyKeyInProgress
    return StoredResponse(
        status_code=record.response_status,
        headers=dict(record.response_headers or {}),
        body=record.response_body or b"",
    )


async def complete(
    *, session: AsyncSession, claim_id: uuid.UUID, response: StoredResponse, now: datetime
) -> bool:
    """Store the response on a claim, in the request's own transaction; False if it was lost.

    A claim is lost when it was abandoned past its lease and another request took the key.
    """
    result = await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id, IdempotencyKey.completed_at.is_(None))
        .values(
            completed_at=now,
            response_status=response.status_code,
            response_headers=response.headers,
            response_body=response.body,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release(*, session: AsyncSession, claim_id: uuid.UUID) -> None:
    """Free the key of a claim whose request failed, so the client may retry with it."""
    await session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id, IdempotencyKey.completed_at.is_(None))
        .execution_options(synchronize_session=False)
    )


async def purge_expired(*, session: AsyncSession, now: datetime) -> int:
    """Delete the keys that expired by `now`; return how many (for the scheduled purge job)."""
    result = await session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
