"""Login throttling by account and client together, so a stranger cannot lock the owner out.

Two rules, over the failed password checks of the last `window_seconds`:
- one client (address) that failed `max_attempts` times for an account is refused for that
  account until the oldest of those failures leaves the window;
- the account, from all clients together, answers more slowly once it has `max_attempts`
  failures: each further attempt waits 1, 2, 4 ... seconds after the newest failure, at most
  `max_delay_seconds`. An attacker spread over many addresses gets one guess per delay; the
  owner, from their own address, waits no longer than that.
A successful login forgets that client's failures; the others' stay counted.

An attempt is counted as a failure before its password is checked, in the same atomic step
that decides whether it may be made at all (`reserve`); a success then forgets it with the
client's other failures. Concurrent guesses therefore take turns at the limit: however many
arrive at once, no more passwords are checked than the rules allow one at a time.
"""

import hashlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure
from app.core.errors import RateLimitedError
from app.core.settings_groups import AuthSettings
from app.db.base import utcnow
from app.db.locks import lock_for_transaction

log = structlog.get_logger(__name__)

BLOCKED_DETAIL = "Too many failed logins for this account; try again later."


class LoginThrottle(Protocol):
    """Counts the failed password checks of one client for an account, and of the account."""

    async def reserve(self, email: str) -> None:
        """Count an attempt at `email`'s password as failed, before it is checked.

        Raises:
            RateLimitedError: This client, or the account, must wait; nothing was counted.
        """

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
            raise refusal(seconds)


def refusal(seconds: float) -> RateLimitedError:
    """The 429 of an attempt that must wait `seconds`."""
    # Whole seconds, rounded up: retrying after Retry-After must not be refused again.
    return RateLimitedError(BLOCKED_DETAIL, retry_after=max(1, math.ceil(seconds)))


class DatabaseLoginThrottle:
    """A login throttle that keeps failures as rows, for deployments without Redis.

    It works in the login request's own session: one connection per request, which SQLite
    needs (it has one writer). The caller commits after `reserve`, before it checks the
    password: that publishes the count to the other attempts, ends their wait for this one's
    turn, and keeps the count although the request then fails.
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

    async def reserve(self, email: str) -> None:
        """Count this attempt as failed unless this client, or the account, must wait."""
        # Attempts at one email take turns from here to the caller's commit, so each one reads
        # every failure counted before it: read-then-insert without it lets a burst all pass.
        await lock_for_transaction(self._session, f"login-throttle:{email}")
        now = self._now()
        since = now - timedelta(seconds=self._rules.window_seconds)
        client = await self._times(email, since, self._rules.max_attempts, client=True)
        account = await self._times(email, since, self._rules.account_failures_needed, client=False)
        self._rules.check(now.timestamp(), client, account)
        self._session.add(LoginFailure(email=email, client=self._client, created_at=now))
        # Pruning on every count keeps the table bounded by recent failures only.
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.created_at <= since
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


# `ThrottleRules.wait` in Lua, and the count, as one step no other command can come between
# (a change to the rules is made in both; tests/auth/test_throttle.py runs the same cases on
# both stores). KEYS: the account's failures, this client's (sorted sets scored by time in
# seconds). ARGV: now, the window's start (both exact, as the caller wrote them), max_attempts,
# window_seconds, max_delay_seconds, the keys' TTL and this attempt's member. Answers {1} when
# the attempt was counted, else {0, seconds to wait} (a string: Redis cuts numbers to integers).
RESERVE = """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local window, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
end
local wait = 0
local nth = redis.call('ZREVRANGE', KEYS[2], limit - 1, limit - 1, 'WITHSCORES')
if #nth > 0 then wait = tonumber(nth[2]) + window - now end
local excess = redis.call('ZCARD', KEYS[1]) - limit
if excess >= 0 then
  local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(newest[2]) + math.min(2 ^ excess, cap) - now)
end
if wait > 0 then
  return {0, tostring(wait)}
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[7])
  redis.call('EXPIRE', key, ARGV[6])
end
return {1}
"""


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
        self._reserve = redis.register_script(RESERVE)

    def _keys(self, email: str) -> tuple[str, str]:
        account = self._prefix + _digest(email)
        return account, f"{account}:{self._client}"

    async def reserve(self, email: str) -> None:
        """Count this attempt as failed unless this client, or the account, must wait.

        One script call: it reads the failures and adds this one atomically. The keys
        disappear once their newest failure left the window.
        """
        now, rules = self._now(), self._rules
        # Unique members, so two attempts in the same instant count twice; the client's
        # digest first, so `clear` finds its failures in the account's set.
        member = f"{self._client}:{uuid.uuid4().hex}"
        args: list[str | int] = [repr(now), repr(now - rules.window_seconds), rules.max_attempts]
        args += [repr(rules.window_seconds), repr(rules.max_delay_seconds)]
        args += [math.ceil(rules.window_seconds), member]
        answer: list[Any] = await self._reserve(keys=list(self._keys(email)), args=args)
        if answer[0] != 1:
            raise refusal(float(answer[1]))

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

    async def reserve(self, email: str) -> None:
        """Count this attempt as failed unless this client, or the account, must wait."""
        await self._call("reserve", email)

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
