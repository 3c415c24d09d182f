"""A lock on a name for the rest of a transaction, for read-then-write steps that must take turns.

Two transactions that read rows and then write one from what they read (count the failures,
then add one) can both read before either writes. Taking the same lock first makes them take
turns: the second reads once the first committed.
"""

import hashlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


def lock_key(name: str) -> int:
    """The signed 64-bit key of PostgreSQL's advisory locks for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def lock_for_transaction(session: AsyncSession, name: str) -> None:
    """Wait until no other transaction holds the lock on `name`, then hold it until this one ends.

    On PostgreSQL an advisory transaction lock (names whose digests collide only share a lock).
    SQLite needs none: every transaction there begins IMMEDIATE (`db.session`), so its first
    statement takes the database's one write lock, held to the end. The session must be in a
    transaction (not one of `create_read_session_factory`'s): with each statement committing
    alone, the lock would be gone before the next statement.
    """
    if session.get_bind().dialect.name == "sqlite":
        return
    await session.execute(select(func.pg_advisory_xact_lock(lock_key(name))))
