"""The cost of checking every access token's session: the user load with and without it.

Every request with an access token loads its user. Since sessions end at once, that load also
checks that the token's session (its refresh-token family) is live, in the same statement.
This compares, on PostgreSQL and in one run, the statement as it was (the user by primary
key) with the statement as it is (the user, and a live token of the session), each awaited
ITERATIONS times through SQLAlchemy on one connection. Prints one JSON line (µs per call).

    uv run python bench/session_check.py      # needs PostgreSQL (BENCH_DATABASE_URL)
"""

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import servers
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.auth import service as auth_service
from app.auth.models import RefreshToken
from app.db.base import utcnow
from app.models import Base
from app.users import service as users_service
from app.users.models import User

DATABASE = "bench_sessions"


async def seed(session: AsyncSession, sessions: int) -> tuple[uuid.UUID, uuid.UUID]:
    """One user with `sessions` refresh-token families (a busy account); return one of them."""
    now = utcnow()
    user = User(email="bench@example.com", hashed_password="x")
    session.add(user)
    await session.flush()
    families = [uuid.uuid4() for _ in range(sessions)]
    session.add_all(
        RefreshToken(
            user_id=user.id,
            family_id=family,
            token_hash=uuid.uuid4().hex * 2,
            authenticated_at=now,
            expires_at=now + timedelta(days=30),
        )
        for family in families
    )
    await session.commit()
    return user.id, families[-1]


async def per_call(call: Callable[[], Awaitable[object]], iterations: int) -> float:
    for _ in range(200):  # warm the statement caches
        await call()
    started = time.perf_counter()
    for _ in range(iterations):
        await call()
    return (time.perf_counter() - started) / iterations * 1e6


async def main(iterations: int, sessions: int) -> dict[str, float]:
    engine = create_async_engine(await servers.fresh_postgres_database(DATABASE))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            user_id, family = await seed(session, sessions)

            async def user_only() -> object:
                session.expunge_all()  # a request starts with an empty identity map
                return await users_service.get(session=session, user_id=user_id)

            async def user_and_session() -> object:
                session.expunge_all()
                return await auth_service.session_user(
                    session=session, user_id=user_id, session_id=family
                )

            before = await per_call(user_only, iterations)
            after = await per_call(user_and_session, iterations)
    finally:
        await engine.dispose()
    return {
        "user_only_us": round(before, 1),
        "user_and_live_session_us": round(after, 1),
        "added_us": round(after - before, 1),
        "sessions_of_the_user": sessions,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.iterations, args.sessions))))
