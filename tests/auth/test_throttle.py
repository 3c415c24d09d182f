"""Login throttling: one set of behaviour tests run against the database and Redis throttles.

These are one client's view (the account's slower answers stay under a second here); the
rules across clients are attacked in tests/security/test_login_lockout.py.
"""

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Protocol

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import LoginFailure, LoginKnownClient
from app.auth.purge import purge_expired
from app.auth.throttle import (
    DatabaseLoginThrottle,
    FallbackLoginThrottle,
    LoginThrottle,
    RedisLoginThrottle,
    ThrottleRules,
    create_login_throttle,
)
from app.core.config import Settings
from app.core.errors import RateLimitedError
from app.deps import resources_of
from tests.auth.helpers import throttle_key, throttle_scope
from tests.harness import log_lines, make_settings

pytestmark = pytest.mark.anyio

MAX_ATTEMPTS = 3
WINDOW = 60
EMAIL = "alice@example.com"
OTHER = "bob@example.com"
CLIENT = "203.0.113.9"
ACCOUNT = uuid.UUID(int=1)  # the user holding each address here
RULES = ThrottleRules(max_attempts=MAX_ATTEMPTS, window_seconds=WINDOW, max_delay_seconds=1)
# Clients that proved the password are known for an hour; the account's delay reaches 8 s.
MEMORY = 3600
REMEMBERING = ThrottleRules(
    max_attempts=MAX_ATTEMPTS,
    window_seconds=WINDOW,
    max_delay_seconds=8,
    known_client_seconds=MEMORY,
)
OWNER = "203.0.113.50"
NEWCOMER = "198.51.100.7"


class Clock:
    """A clock the test sets by hand, read as an aware datetime or as a Unix timestamp."""

    def __init__(self) -> None:
        # Near real time, so Redis's own expiry stays meaningful; whole seconds, so offsets
        # add exactly and both representations agree to the microsecond.
        self.start = float(int(time.time()))
        self.offset = 0.0

    def at(self, seconds: float) -> None:
        self.offset = seconds

    def timestamp(self) -> float:
        return self.start + self.offset

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def fail_at(
    throttle: LoginThrottle, clock: Clock, *seconds: float, email: str = EMAIL
) -> None:
    """Make one allowed attempt for `email` at each of `seconds` (offsets from the start).

    Each counts as a failed login: an attempt is counted before its password is checked.
    """
    for second in seconds:
        clock.at(second)
        await throttle.reserve(email, ACCOUNT)


async def retry_after(throttle: LoginThrottle, email: str = EMAIL) -> int:
    """Assert that an attempt for `email` is refused now and return its Retry-After."""
    with pytest.raises(RateLimitedError) as info:
        await throttle.reserve(email, ACCOUNT)
    assert info.value.status_code == 429
    return int(info.value.headers["Retry-After"])


class Make(Protocol):
    """Builds a throttle on the store under test, sharing the test's clock."""

    def __call__(self, rules: ThrottleRules = RULES, client: str = CLIENT) -> LoginThrottle: ...


class ThrottleBehaviour:
    """What every throttle must do; subclasses provide the `make` fixture."""

    @pytest.fixture
    def throttle(self, make: Make) -> LoginThrottle:
        return make()

    async def test_attempts_up_to_the_limit_are_allowed_and_counted(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, *range(MAX_ATTEMPTS))
        assert await retry_after(throttle) == WINDOW - (MAX_ATTEMPTS - 1)

    async def test_the_limit_blocks_with_whole_seconds_to_wait(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0, 10, 20)
        clock.at(25.5)
        # The failure at 0 leaves the window at 60: 34.5 seconds, rounded up.
        assert await retry_after(throttle) == 35
        # A refused attempt is not counted: the wait stays the same.
        assert await retry_after(throttle) == 35

    async def test_other_emails_are_unaffected(self, throttle: LoginThrottle, clock: Clock) -> None:
        await fail_at(throttle, clock, 0, 1, 2)
        assert await retry_after(throttle) == 58
        await throttle.reserve(OTHER, ACCOUNT)
        await throttle.reserve(
            EMAIL.upper(), ACCOUNT
        )  # emails come normalised; the key is taken as given

    async def test_failures_older_than_the_window_stop_counting(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        # The attempt at 63 is allowed: the failure at 0 no longer counts.
        await fail_at(throttle, clock, 0, 61, 62, 63)
        assert await retry_after(throttle) == 58  # counted from the failure at 61

    async def test_the_block_lifts_when_the_window_passes(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0, 10, 20)
        clock.at(59.5)
        assert await retry_after(throttle) == 1
        # The window slides: the attempt at 60 is allowed, and blocks until the one at 10 leaves.
        await fail_at(throttle, clock, 60)
        assert await retry_after(throttle) == 10

    async def test_retry_after_waits_for_the_count_to_drop_below_the_limit(
        self, make: Make, clock: Clock
    ) -> None:
        # More failures than the limit: counted under a higher LOGIN_MAX_ATTEMPTS, since lowered.
        looser = ThrottleRules(max_attempts=5, window_seconds=WINDOW, max_delay_seconds=1)
        await fail_at(make(looser), clock, 0, 10, 20, 30, 40)
        clock.at(45)
        throttle = make(RULES)
        assert await retry_after(throttle) == 35  # at 80, only 30 and 40 are left
        await fail_at(throttle, clock, 80)

    async def test_clear_lifts_the_block_of_that_email_only(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0, 1, 2)
        await fail_at(throttle, clock, 0, 1, 2, email=OTHER)
        await throttle.clear(EMAIL, ACCOUNT)
        assert await retry_after(throttle, OTHER) == 58
        # Counting starts afresh after a clear.
        await fail_at(throttle, clock, 2, 3, 4)
        assert await retry_after(throttle) == 58

    async def test_the_account_waits_longer_after_each_failure_from_anywhere(
        self, make: Make, clock: Clock
    ) -> None:
        for n in range(MAX_ATTEMPTS):
            await fail_at(make(client=f"192.0.2.{n}"), clock, 0)
        # One attempt per second (the cap here) from all clients together, each one counted.
        assert await retry_after(make(client="192.0.2.100")) == 1
        await fail_at(make(client="192.0.2.101"), clock, 1)
        assert await retry_after(make(client="192.0.2.102")) == 1


async def log_in(throttle: LoginThrottle, clock: Clock, second: float) -> None:
    """A login with the right password at `second`: allowed, then forgotten as a failure."""
    clock.at(second)
    await throttle.reserve(EMAIL, ACCOUNT)
    await throttle.clear(EMAIL, ACCOUNT)


async def strangers_keep_the_delay(make: Make, clock: Clock, rounds: int) -> list[float]:
    """Fail from a new address at each moment the account's delay ends; return those moments.

    The first `MAX_ATTEMPTS` failures come at once (no delay yet); each later one as soon as
    the delay before it ends (1, 2, 4 ... seconds): the account is always in its delay.
    """
    second, moments = 10.0, []
    for n in range(MAX_ATTEMPTS + rounds):
        if n >= MAX_ATTEMPTS:
            second += min(2.0 ** (n - MAX_ATTEMPTS), REMEMBERING.max_delay_seconds)
        await fail_at(make(REMEMBERING, f"192.0.2.{n % 6}"), clock, second)
        moments.append(second)
    return moments[MAX_ATTEMPTS - 1 :]


class KnownClientBehaviour(ThrottleBehaviour):
    """Strangers' failures delay an account's unknown clients only."""

    async def test_a_known_client_is_let_through_the_delay_strangers_keep_running(
        self, make: Make, clock: Clock
    ) -> None:
        owner = make(REMEMBERING, OWNER)
        await log_in(owner, clock, 0)
        second = 10.0
        for n in range(MAX_ATTEMPTS):
            await fail_at(make(REMEMBERING, f"192.0.2.{n}"), clock, second)
        for round_ in range(4):
            # Right after a stranger's guess: a new address waits the delay, the owner does not.
            assert await retry_after(make(REMEMBERING, NEWCOMER)) == 2**round_
            await log_in(owner, clock, second)
            second += 2**round_
            await fail_at(make(REMEMBERING, f"192.0.2.{MAX_ATTEMPTS + round_}"), clock, second)

    async def test_a_known_client_is_still_refused_after_its_own_failures(
        self, make: Make, clock: Clock
    ) -> None:
        owner = make(REMEMBERING, OWNER)
        await log_in(owner, clock, 0)
        moments = await strangers_keep_the_delay(make, clock, 2)
        await fail_at(owner, clock, *[moments[-1]] * MAX_ATTEMPTS)
        assert await retry_after(owner) == WINDOW
        # Its own failures stay counted for the account too.
        assert await retry_after(make(REMEMBERING, NEWCOMER)) == REMEMBERING.max_delay_seconds

    async def test_a_client_is_known_for_the_period_after_its_last_login(
        self, make: Make, clock: Clock
    ) -> None:
        owner = make(REMEMBERING, OWNER)
        await log_in(owner, clock, 0)
        await log_in(owner, clock, 20)  # each login starts the period again
        clock.start += MEMORY  # from here, offsets count from an hour after the first login
        for n in range(MAX_ATTEMPTS):
            await fail_at(make(REMEMBERING, f"192.0.2.{n}"), clock, 10)
        await owner.reserve(EMAIL, ACCOUNT)  # known: its last login was 50 minutes 10 s ago
        await fail_at(make(REMEMBERING, "192.0.2.5"), clock, 21)
        # An hour and 1 s after its last login, the owner waits like anyone.
        assert await retry_after(owner) == 4

    async def test_no_client_is_known_with_a_period_of_zero(self, make: Make, clock: Clock) -> None:
        forgetful = ThrottleRules(
            max_attempts=MAX_ATTEMPTS, window_seconds=WINDOW, max_delay_seconds=8
        )
        await log_in(make(forgetful, OWNER), clock, 0)
        for n in range(MAX_ATTEMPTS):
            await fail_at(make(forgetful, f"192.0.2.{n}"), clock, 10)
        assert await retry_after(make(forgetful, OWNER)) == 1


@pytest.fixture
async def session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with session_factory() as session:
        yield session


class TestDatabaseLoginThrottle(KnownClientBehaviour):
    @pytest.fixture
    def make(self, session: AsyncSession, clock: Clock) -> Make:
        def make(rules: ThrottleRules = RULES, client: str = CLIENT) -> LoginThrottle:
            return DatabaseLoginThrottle(session, client=client, rules=rules, now=clock.datetime)

        return make

    async def test_old_failures_are_pruned_when_an_attempt_is_counted(
        self, app: FastAPI, throttle: LoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0)
        await fail_at(throttle, clock, 0, email=OTHER)
        await fail_at(throttle, clock, 61)
        session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
        async with session_factory() as session:
            rows = (await session.scalars(select(LoginFailure))).all()
        mine = [row.created_at for row in rows if row.email == EMAIL]
        assert mine == [clock.datetime()]  # stored as given, timezone-aware UTC
        assert mine[0].tzinfo == UTC
        # Pruning is per email: another email's rows go on its own next failure.
        assert [row.email for row in rows if row.email != EMAIL] == [OTHER]

    async def test_a_known_client_is_one_row_refreshed_then_purged_after_the_period(
        self, app: FastAPI, make: Make, session: AsyncSession, clock: Clock
    ) -> None:
        await log_in(make(REMEMBERING, OWNER), clock, 0)
        await log_in(make(REMEMBERING, OWNER), clock, 30)
        await log_in(make(REMEMBERING, NEWCOMER), clock, 0)
        await session.commit()
        rows = (await session.scalars(select(LoginKnownClient))).all()
        assert {(row.client, row.last_login_at.timestamp()) for row in rows} == {
            (OWNER, clock.start + 30),
            (NEWCOMER, clock.start),
        }
        moment = datetime.fromtimestamp(clock.start + MEMORY, UTC)
        counts = await purge_expired(
            session=session, now=moment, login_window_seconds=WINDOW, login_known_client_days=1
        )
        assert counts["login_known_clients"] == 0  # a day: both are still known
        counts = await purge_expired(
            session=session, now=moment, login_window_seconds=WINDOW, login_known_client_days=0
        )
        assert counts["login_known_clients"] == 2


def redis_throttle(
    redis: Redis, prefix: str, clock: Clock, rules: ThrottleRules = RULES, client: str = CLIENT
) -> RedisLoginThrottle:
    return RedisLoginThrottle(redis, client=client, rules=rules, now=clock.timestamp, prefix=prefix)


class TestRedisLoginThrottle(KnownClientBehaviour):
    @pytest.fixture
    def make(self, redis: Redis, prefix: str, clock: Clock) -> Make:
        def make(rules: ThrottleRules = RULES, client: str = CLIENT) -> LoginThrottle:
            return redis_throttle(redis, prefix, clock, rules, client)

        return make

    async def test_concurrent_attempts_take_turns_at_the_limit(
        self, throttle: LoginThrottle, clock: Clock
    ) -> None:
        outcomes = await asyncio.gather(
            *(throttle.reserve(EMAIL, ACCOUNT) for _ in range(4 * MAX_ATTEMPTS)),
            return_exceptions=True,
        )
        assert outcomes.count(None) == MAX_ATTEMPTS
        assert all(isinstance(outcome, RateLimitedError) for outcome in outcomes if outcome)

    async def test_the_next_user_of_an_address_inherits_nothing_without_forget(
        self, make: Make, clock: Clock
    ) -> None:
        """The keys name the user: one who takes an address over after its user left it
        (deleted, or moved to another email, while Redis missed `forget`) inherits neither
        that user's failures nor its known clients."""
        owner = make(REMEMBERING, OWNER)
        await log_in(owner, clock, 0)
        for n in range(MAX_ATTEMPTS):
            await fail_at(make(REMEMBERING, f"192.0.2.{n}"), clock, 10)
        assert await retry_after(make(REMEMBERING, NEWCOMER)) == 1  # the old user's delay
        successor = uuid.UUID(int=2)  # registered at EMAIL once the old user left it
        await make(REMEMBERING, NEWCOMER).reserve(EMAIL, successor)  # no failures, no delay
        for n in range(MAX_ATTEMPTS - 1):
            await make(REMEMBERING, f"192.0.2.{n}").reserve(EMAIL, successor)
        # The successor's delay now holds the old owner's client like any stranger's.
        with pytest.raises(RateLimitedError):
            await owner.reserve(EMAIL, successor)
        await owner.reserve(EMAIL, ACCOUNT)  # still known to the user it logged in to

    async def test_the_keys_are_digests_that_expire(
        self, redis: Redis, prefix: str, throttle: RedisLoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0)
        keys = sorted([key async for key in redis.scan_iter(match=prefix + "*")])
        account = prefix + throttle_scope(EMAIL, ACCOUNT)
        client = hashlib.sha256(CLIENT.encode()).hexdigest()
        assert keys == [account.encode(), f"{account}:{client}".encode()]
        for key in keys:
            assert b"alice" not in key
            assert b"203.0.113" not in key
            assert 0 < await redis.ttl(key) <= WINDOW

    async def test_clear_deletes_the_key(
        self, redis: Redis, prefix: str, throttle: RedisLoginThrottle, clock: Clock
    ) -> None:
        await fail_at(throttle, clock, 0)
        await throttle.clear(EMAIL, ACCOUNT)
        assert [key async for key in redis.scan_iter(match=prefix + "*")] == []

    async def test_known_clients_are_one_expiring_key_of_digests(
        self, redis: Redis, prefix: str, make: Make, clock: Clock
    ) -> None:
        await log_in(make(REMEMBERING, NEWCOMER), clock, 0)
        await log_in(make(REMEMBERING, OWNER), clock, MEMORY)  # trims the newcomer's entry
        key = f"{prefix}known:{throttle_scope(EMAIL, ACCOUNT)}"
        assert [key async for key in redis.scan_iter(match=prefix + "*")] == [key.encode()]
        owner = hashlib.sha256(OWNER.encode()).hexdigest().encode()
        assert await redis.zrange(key, 0, -1, withscores=True) == [(owner, clock.timestamp())]
        assert 0 < await redis.ttl(key) <= MEMORY

    async def test_workers_share_the_count(
        self, redis_url_or_skip: str, prefix: str, throttle: RedisLoginThrottle, clock: Clock
    ) -> None:
        other_worker = Redis.from_url(redis_url_or_skip)
        try:
            await fail_at(throttle, clock, 0, 1)
            await fail_at(redis_throttle(other_worker, prefix, clock), clock, 2)
            assert await retry_after(throttle) == 58
        finally:
            await other_worker.aclose()


LIMITS = {"LOGIN_MAX_ATTEMPTS": 2, "LOGIN_WINDOW_SECONDS": 30}


async def test_create_login_throttle_uses_the_database_without_redis(
    session: AsyncSession, settings: Settings
) -> None:
    throttle = create_login_throttle(
        make_settings(DATABASE_URL=settings.database.url, **LIMITS).auth,
        session=session,
        redis=None,
        client=CLIENT,
    )
    assert isinstance(throttle, DatabaseLoginThrottle)
    await throttle.reserve(EMAIL, ACCOUNT)
    await throttle.reserve(EMAIL, ACCOUNT)
    assert 29 <= await retry_after(throttle) <= 30  # the real clock: settings took effect


async def test_create_login_throttle_uses_redis_when_given(redis: Redis) -> None:
    throttle = create_login_throttle(
        make_settings(**LIMITS).auth, session=AsyncSession(), redis=redis, client=CLIENT
    )
    assert isinstance(throttle, FallbackLoginThrottle)
    email = f"{uuid.uuid4().hex}@example.com"  # the default prefix is shared: a unique key
    try:
        await throttle.reserve(email, ACCOUNT)
        await throttle.reserve(email, ACCOUNT)
        assert 29 <= await retry_after(throttle, email) <= 30
        assert await redis.exists(throttle_key(email, ACCOUNT))
    finally:
        await throttle.clear(email, ACCOUNT)
        await redis.delete("login-failures:known:" + throttle_scope(email, ACCOUNT))


async def test_while_redis_is_down_the_database_keeps_counting(
    session: AsyncSession, settings: Settings, closed_port: int
) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=1)
    throttle = create_login_throttle(
        make_settings(DATABASE_URL=settings.database.url, **LIMITS).auth,
        session=session,
        redis=dead,
        client=CLIENT,
    )
    try:
        with log_lines() as logs:
            await throttle.reserve(EMAIL, ACCOUNT)
            await throttle.reserve(EMAIL, ACCOUNT)
            with pytest.raises(RateLimitedError):
                await throttle.reserve(EMAIL, ACCOUNT)
            await throttle.clear(EMAIL, ACCOUNT)
            await throttle.reserve(EMAIL, ACCOUNT)
        assert {line["operation"] for line in logs.events("login_throttle_fallback")} == {
            "reserve",
            "clear",
        }
    finally:
        await dead.aclose()
