"""Login throttling by account and client together, so a stranger cannot lock the owner out.

Two rules, over the failed password checks of the last `window_seconds`:
- one client (address) that failed `max_attempts` times for an account is refused for that
  account until the oldest of those failures leaves the window;
- the account, from all clients together, answers more slowly once it has `max_attempts`
  failures: each further attempt waits 1, 2, 4 ... seconds after the newest failure, at most
  `max_delay_seconds`. An attacker spread over many addresses gets one guess per delay; the
  owner, from their own address, waits no longer than that.
A successful login forgets that client's failures; the others' stay counted.
"""

import hashlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
    """Counts the failed password checks of one client for an account, and of the account."""

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when this client, or the account, must wait."""

    async def record_failure(self, email: str) -> None:
        """Count one failed password check for `email` from this client."""

    async def clear(self, email: str) -> None:
        """Forget this client's failures for `email`, after it proved the password."""


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """The numbers of the two rules (see the module)."""

    max_attempts: int
    window_seconds: float
    max_delay_seconds: float

    @property
    def account_failures_needed(self) -> int:
        """How many of an account's newest failures decide its delay (past them it is capped)."""
        return self.max_attempts + math.ceil(math.log2(max(self.max_delay_seconds, 1))) + 1

    def wait(self, now: float, client: list[float], account: list[float]) -> float:
        """Seconds to wait, given failure times newest first (of this client, of the account)."""
        waits = [0.0]
        if len(client) >= self.max_attempts:
            waits.append(client[self.max_attempts - 1] + self.window_seconds - now)
        excess = len(account) - self.max_attempts
        if excess >= 0:
            waits.append(account[0] + min(2.0**excess, self.max_delay_seconds) - now)
        return max(waits)

    def check(self, now: float, client: list[float], account: list[float]) -> None:
        """Raise `RateLimitedError` with `Retry-After` when there is a wait."""
        seconds = self.wait(now, client, account)
        if seconds > 0:
            # Whole seconds, rounded up: retrying after Retry-After must not be refused again.
            raise RateLimitedError(BLOCKED_DETAIL, retry_after=max(1, math.ceil(seconds)))


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
        client: str,
        rules: ThrottleRules,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session = session
        self._client = client
        self._rules = rules
        self._now = now

    async def _times(self, email: str, since: datetime, limit: int, client: bool) -> list[float]:
        query = select(LoginFailure.created_at).where(
            LoginFailure.email == email, LoginFailure.created_at > since
        )
        if client:
            query = query.where(LoginFailure.client == self._client)
        query = query.order_by(LoginFailure.created_at.desc()).limit(limit)
        return [moment.timestamp() for moment in (await self._session.scalars(query)).all()]

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when this client, or the account, must wait."""
        now = self._now()
        since = now - timedelta(seconds=self._rules.window_seconds)
        client = await self._times(email, since, self._rules.max_attempts, client=True)
        account = await self._times(email, since, self._rules.account_failures_needed, client=False)
        self._rules.check(now.timestamp(), client, account)

    async def record_failure(self, email: str) -> None:
        """Count one failure and drop the account's failures that left the window."""
        now = self._now()
        self._session.add(LoginFailure(email=email, client=self._client, created_at=now))
        # Pruning on every write keeps the table bounded by recent failures only.
        cutoff = now - timedelta(seconds=self._rules.window_seconds)
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.created_at <= cutoff
            )
        )
        await self._session.flush()

    async def clear(self, email: str) -> None:
        """Forget this client's failures for `email`."""
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.client == self._client
            )
        )


def _digest(text: str) -> str:
    # A digest keeps addresses out of key listings, dumps and monitoring tools.
    return hashlib.sha256(text.encode()).hexdigest()


class RedisLoginThrottle:
    """A login throttle on Redis sorted sets (per account, per account and client)."""

    def __init__(
        self,
        redis: Redis,
        *,
        client: str,
        rules: ThrottleRules,
        now: Callable[[], float] = time.time,
        prefix: str = "login-failures:",
    ) -> None:
        self._redis = redis
        self._client = _digest(client)
        self._rules = rules
        self._now = now
        self._prefix = prefix

    def _keys(self, email: str) -> tuple[str, str]:
        account = self._prefix + _digest(email)
        return account, f"{account}:{self._client}"

    async def check(self, email: str) -> None:
        """Raise `RateLimitedError` when this client, or the account, must wait."""
        account_key, client_key = self._keys(email)
        now, rules = self._now(), self._rules
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (account_key, client_key):
                pipe.zremrangebyscore(key, "-inf", now - rules.window_seconds)
            pipe.zrevrange(client_key, 0, rules.max_attempts - 1, withscores=True)
            pipe.zrevrange(account_key, 0, rules.account_failures_needed - 1, withscores=True)
            *_, client, account = await pipe.execute()
        rules.check(now, [at for _, at in client], [at for _, at in account])

    async def record_failure(self, email: str) -> None:
        """Count one failure; the keys disappear once their newest failure left the window."""
        now = self._now()
        window = math.ceil(self._rules.window_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in self._keys(email):
                # Unique members, so two failures in the same instant count twice; the
                # client's digest first, so `clear` finds its failures in the account's set.
                pipe.zadd(key, {f"{self._client}:{uuid.uuid4().hex}": now})
                pipe.expire(key, window)
            await pipe.execute()

    async def clear(self, email: str) -> None:
        """Forget this client's failures for `email` (an account holds a few dozen at most)."""
        account_key, client_key = self._keys(email)
        members = await self._redis.zrange(account_key, 0, -1)
        mine = [m for m in members if isinstance(m, bytes) and m.startswith(self._client.encode())]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(client_key)
            if mine:
                pipe.zrem(account_key, *mine)
            await pipe.execute()


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
        """Raise `RateLimitedError` when this client, or the account, must wait."""
        await self._call("check", email)

    async def record_failure(self, email: str) -> None:
        """Count one failure."""
        await self._call("record_failure", email)

    async def clear(self, email: str) -> None:
        """Forget this client's failures for `email`."""
        await self._call("clear", email)


def create_login_throttle(
    settings: AuthSettings, *, session: AsyncSession, redis: Redis | None, client: str
) -> LoginThrottle:
    """Return the throttle for one request from `client`: Redis (falling back to the database)."""
    rules = ThrottleRules(
        max_attempts=settings.login_max_attempts,
        window_seconds=settings.login_window_seconds,
        max_delay_seconds=settings.login_max_delay_seconds,
    )
    database = DatabaseLoginThrottle(session, client=client, rules=rules)
    if redis is None:
        return database
    return FallbackLoginThrottle(RedisLoginThrottle(redis, client=client, rules=rules), database)
