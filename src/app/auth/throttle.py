"""Login throttling by account and client together, so a stranger cannot lock the owner out.

Two rules, over the failed password checks of the last `window_seconds`:
- one client (address) that failed `max_attempts` times for an account is refused for that
  account until the oldest of those failures leaves the window;
- the account, from all clients together, answers more slowly once it has `max_attempts`
  failures: each further attempt waits 1, 2, 4 ... seconds after the newest failure, at most
  `max_delay_seconds`. A client that proved the password of the account within
  `known_client_seconds` (a known client) does not wait for it: strangers spread over many
  addresses, guessing as soon as each delay ends, keep the account in its delay forever, and
  would otherwise keep the owner out as long. A known client's attempts still count, and it
  is still held by the first rule.
A successful check forgets that client's failures (the others' stay counted) and makes it known.
An owner on an address never used before shares the delay with the strangers: one attempt per
delay, at most `max_delay_seconds`, for all of them together.

An attempt is counted as a failure before its password is checked, in the same atomic step
that decides whether it may be made at all (`reserve`); a success then forgets it with the
client's other failures. Concurrent guesses therefore take turns at the limit: however many
arrive at once, no more passwords are checked than the rules allow one at a time.

Whoever registers an address after its account left it (the account was deleted, or moved
to another email) must not inherit its state: the old owner's clients would skip the new
account's delay. The database store forgets the address (`forget`) within the change's
transaction, while the change holds the account's row, which a success takes before it makes
a client known (a login's `_still_valid`, a proof's `hold`): a success that waited finds the
account gone, or under another email, and makes no client known to the address. The Redis
store, which may be down just then, keys by the address and the user holding it (none for an
address with no account): a new user never reads the old one's keys, and `forget` only tidies
them away when Redis answers.

The rules are `ThrottleRules.wait` (`throttle_rules`); the Redis store runs them in Lua
(`throttle_redis`); the database store is here.
"""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure, LoginKnownClient
from app.auth.throttle_redis import RedisLoginThrottle
from app.auth.throttle_rules import LoginThrottle, ThrottleRules
from app.core.settings_groups import AuthSettings
from app.db.base import utcnow
from app.db.locks import lock_for_transaction

__all__ = [
    "DatabaseLoginThrottle",
    "FallbackLoginThrottle",
    "LoginThrottle",
    "RedisLoginThrottle",
    "ThrottleRules",
    "create_login_throttle",
]

log = structlog.get_logger(__name__)


class DatabaseLoginThrottle:
    """A login throttle that keeps failures and known clients as rows, without Redis.

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

    async def _known(self, email: str, now: datetime) -> bool:
        last = await self._session.scalar(
            select(LoginKnownClient.last_login_at).where(
                LoginKnownClient.email == email, LoginKnownClient.client == self._client
            )
        )
        return self._rules.is_known(now.timestamp(), last.timestamp() if last else None)

    async def reserve(self, email: str, account: uuid.UUID | None) -> None:
        """Count this attempt as failed unless this client, or the account, must wait."""
        # By address alone: `forget` runs in the transaction of every change of its user.
        # Attempts at one email take turns from here to the caller's commit, so each one reads
        # every failure counted before it: read-then-insert without it lets a burst all pass.
        await lock_for_transaction(self._session, f"login-throttle:{email}")
        now, rules = self._now(), self._rules
        since = now - timedelta(seconds=rules.window_seconds)
        client = await self._times(email, since, rules.max_attempts, client=True)
        everyone = await self._times(email, since, rules.account_failures_needed, client=False)
        known = await self._known(email, now)
        rules.check(now.timestamp(), client, everyone, known=known)
        self._session.add(LoginFailure(email=email, client=self._client, created_at=now))
        # Pruning on every count keeps the table bounded by recent failures only.
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.created_at <= since
            )
        )
        await self._session.flush()

    async def clear(self, email: str, account: uuid.UUID) -> None:
        """Forget this client's failures for `email` and know it (from now, for the period)."""
        await self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.email == email, LoginFailure.client == self._client
            )
        )
        if self._rules.known_client_seconds > 0:
            await self._remember(email)

    async def forget(self, email: str, account: uuid.UUID) -> None:
        """Forget every client's failures for `email`, and every client known to it.

        In the request's session, so the rows go in the transaction of the change that took
        the address from its account.
        """
        await self._session.execute(
            delete(LoginFailure)
            .where(LoginFailure.email == email)
            .execution_options(synchronize_session=False)
        )
        await self._session.execute(
            delete(LoginKnownClient)
            .where(LoginKnownClient.email == email)
            .execution_options(synchronize_session=False)
        )

    async def _remember(self, email: str) -> None:
        # Update, else insert: under the email's lock no other success adds the row between.
        await lock_for_transaction(self._session, f"login-throttle:{email}")
        now = self._now()
        mine = (LoginKnownClient.email == email, LoginKnownClient.client == self._client)
        updated = await self._session.execute(
            update(LoginKnownClient)
            .where(*mine)
            .values(last_login_at=now)
            .execution_options(synchronize_session=False)
        )
        if not updated.rowcount:  # type: ignore[attr-defined]
            self._session.add(LoginKnownClient(email=email, client=self._client, last_login_at=now))
        await self._session.flush()


class FallbackLoginThrottle:
    """Redis first; while Redis fails, the database keeps counting (never an open door)."""

    def __init__(self, primary: LoginThrottle, fallback: LoginThrottle) -> None:
        self._primary = primary
        self._fallback = fallback

    async def _call(self, method: str, email: str, account: uuid.UUID | None) -> None:
        try:
            await getattr(self._primary, method)(email, account)
        except (RedisError, OSError) as exc:
            log.warning("login_throttle_fallback", operation=method, error=type(exc).__name__)
            await getattr(self._fallback, method)(email, account)

    async def reserve(self, email: str, account: uuid.UUID | None) -> None:
        """Count this attempt as failed unless this client, or the account, must wait."""
        await self._call("reserve", email, account)

    async def clear(self, email: str, account: uuid.UUID) -> None:
        """Forget this client's failures for the account, and know it."""
        await self._call("clear", email, account)

    async def forget(self, email: str, account: uuid.UUID) -> None:
        """Forget the account's failures and known clients in both stores; Redis if it answers.

        The database always: it holds what was counted while Redis was down, by address. A
        Redis that fails keeps its keys until they expire, where nobody reads them: they name
        the user who left the address. The change that took the address goes ahead.
        """
        await self._fallback.forget(email, account)
        try:
            await self._primary.forget(email, account)
        except (RedisError, OSError) as exc:
            log.warning("login_throttle_forget_failed", error=type(exc).__name__)


def create_login_throttle(
    settings: AuthSettings, *, session: AsyncSession, redis: Redis | None, client: str
) -> LoginThrottle:
    """Return the throttle for one request from `client`: Redis (falling back to the database)."""
    rules = ThrottleRules(
        max_attempts=settings.login_max_attempts,
        window_seconds=settings.login_window_seconds,
        max_delay_seconds=settings.login_max_delay_seconds,
        known_client_seconds=timedelta(days=settings.login_known_client_days).total_seconds(),
    )
    database = DatabaseLoginThrottle(session, client=client, rules=rules)
    if redis is None:
        return database
    return FallbackLoginThrottle(RedisLoginThrottle(redis, client=client, rules=rules), database)
