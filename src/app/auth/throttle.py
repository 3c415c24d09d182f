"""Per-account login throttling: too many failed logins for one email answer 429 for a while."""

import hashlib
import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure
from app.core.errors import RateLimitedError
from app.core.settings_groups import AuthSettings
from app.db.base import utcnow

log = structlog.get_logger(__name__)

BLOCKED_DETAIL = "Too many failed logins for this account; try again later."


class LoginThrottle(Protocol):
    """Counts failed logins per email in a sliding window and refuses attempts past the limit."""

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when `email` has used up its failed attempts."""

    async def record_failure(self, email: str) -> None:
        """Count one failed login for `email`."""

    async def clear(self, email: str) -> None:
        """Forget the failed logins of `email`, after a successful login."""


def _blocked(seconds_left: float) -> RateLimitedError:
    # Whole seconds, rounded up: retrying after Retry-After must never be refused again.
    return RateLimitedError(BLOCKED_DETAIL, retry_after=max(1, math.ceil(seconds_left)))


class DatabaseLoginThrottle:
    """A login throttle that keeps failures as rows, for deployments without Redis.

    It works in the login request's own session: one connection per request, which SQLite
    needs (it has one writer). The caller commits; `auth.service.authenticate` does so before
    it answers 401, so a failure stays counted although the request fails.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        max_attempts: int,
        window_seconds: int,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session = session
        self._max_attempts = max_attempts
        self._window = timedelta(seconds=window_seconds)
        self._now = now

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when `email` has used up its failed attempts."""
        now = self._now()
        # The newest `max_attempts` failures suffice: the block lifts when the last of them
        # (the oldest, unless concurrent logins overshot the limit) leaves the window.
        query = (
            select(LoginFailure.created_at)
            .where(LoginFailure.email == email, LoginFailure.created_at > now - self._window)
            .order_by(LoginFailure.created_at.desc())
            .limit(self._max_attempts)
        )
        recent = list((await self._session.scalars(query)).all())
        if len(recent) >= self._max_attempts:
            raise _blocked((recent[-1] + self._window - now).total_seconds())

    async def record_failure(self, email: str) -> None:
        """Count one failed login for `email` and drop its failures that left the window."""
        now = self._now()
        self._session.add(LoginFailure(email=email, created_at=now))
        # Pruning on every write keeps the table bounded by recent failures only.
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.created_at <= now - self._window
            )
        )
        await self._session.flush()

    async def clear(self, email: str) -> None:
        """Forget the failed logins of `email`, after a successful login."""
        await self._session.execute(delete(LoginFailure).where(LoginFailure.email == email))


class RedisLoginThrottle:
    """A login throttle on one Redis sorted set per email, shared by every worker."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_attempts: int,
        window_seconds: int,
        now: Callable[[], float] = time.time,
        prefix: str = "login-failures:",
    ) -> None:
        self._redis = redis
        self._max_attempts = max_attempts
        self._window = window_seconds
        self._now = now
        self._prefix = prefix

    def _key(self, email: str) -> str:
        # A digest keeps addresses out of key listings, dumps and monitoring tools.
        return self._prefix + hashlib.sha256(email.encode()).hexdigest()

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when `email` has used up its failed attempts."""
        key, now = self._key(email), self._now()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - self._window)
            pipe.zcard(key)
            # The `max_attempts`-th newest failure: when it leaves, the count drops below the
            # limit (it is the oldest one unless concurrent logins overshot the limit).
            pipe.zrange(key, -self._max_attempts, -self._max_attempts, withscores=True)
            _, count, edge = await pipe.execute()
        if count >= self._max_attempts and edge:
            raise _blocked(float(edge[0][1]) + self._window - now)

    async def record_failure(self, email: str) -> None:
        """Count one failed login for `email` and drop its failures that left the window."""
        key, now = self._key(email), self._now()
        async with self._redis.pipeline(transaction=True) as pipe:
            # A unique member: two failures in the same instant must count twice.
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.zremrangebyscore(key, "-inf", now - self._window)
            # The key disappears on its own once its newest failure has left the window.
            pipe.expire(key, self._window)
            await pipe.execute()

    async def clear(self, email: str) -> None:
        """Forget the failed logins of `email`, after a successful login."""
        await self._redis.delete(self._key(email))


class FallbackLoginThrottle:
    """Redis first; while Redis fails, the database keeps counting (never an open door)."""

    def __init__(self, primary: LoginThrottle, fallback: LoginThrottle) -> None:
        self._primary = primary
        self._fallback = fallback

    async def _call(self, method: str, email: str) -> None:
        try:
            await getattr(self._primary, method)(email)
        except (RedisError, OSError) as exc:
            log.warning("login_throttle_fallback", operation=method, error=type(exc).__name__)
            await getattr(self._fallback, method)(email)

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when `email` has used up its failed attempts."""
        await self._call("check", email)

    async def record_failure(self, email: str) -> None:
        """Count one failed login for `email`."""
        await self._call("record_failure", email)

    async def clear(self, email: str) -> None:
        """Forget the failed logins of `email`."""
        await self._call("clear", email)


def create_login_throttle(
    settings: AuthSettings, *, session: AsyncSession, redis: Redis | None
) -> LoginThrottle:
    """Return the Redis throttle (falling back to the database) when a client is given."""
    attempts, window = settings.login_max_attempts, settings.login_window_seconds
    database = DatabaseLoginThrottle(session, max_attempts=attempts, window_seconds=window)
    if redis is None:
        return database
    shared = RedisLoginThrottle(redis, max_attempts=attempts, window_seconds=window)
    return FallbackLoginThrottle(shared, database)
