"""The login throttle on Redis: the rules of `ThrottleRules` in one Lua script."""

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from app.auth.throttle_rules import ThrottleRules, digest, refusal

# `ThrottleRules.wait` in Lua, and the count, as one step no other command can come between
# (a change to the rules is made in both; tests/auth/test_throttle.py runs the same cases on
# both stores). KEYS: the account's failures, this client's (sorted sets scored by time in
# seconds), the account's known clients (scored by their newest success). ARGV: now, the
# window's start (both exact, as the caller wrote them), max_attempts, window_seconds,
# max_delay_seconds, the keys' TTL, this attempt's member, this client's digest, and the time
# after which a success makes the client known ('' when none does). Answers {1} when the
# attempt was counted, else {0, seconds to wait} (a string: Redis cuts numbers to integers).
RESERVE = """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local window, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[2])
end
local wait = 0
local nth = redis.call('ZREVRANGE', KEYS[2], limit - 1, limit - 1, 'WITHSCORES')
if #nth > 0 then wait = tonumber(nth[2]) + window - now end
local known = false
if ARGV[9] ~= '' then
  local seen = redis.call('ZSCORE', KEYS[3], ARGV[8])
  known = seen ~= false and tonumber(seen) > tonumber(ARGV[9])
end
local excess = redis.call('ZCARD', KEYS[1]) - limit
if excess >= 0 and not known then
  local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(newest[2]) + math.min(2 ^ excess, cap) - now)
end
if wait > 0 then
  return {0, tostring(wait)}
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[7])
  redis.call('EXPIRE', KEYS[i], ARGV[6])
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
        self._client = digest(client)
        self._rules = rules
        self._now = now
        self._prefix = prefix
        self._reserve = redis.register_script(RESERVE)

    def _keys(self, email: str, account: uuid.UUID | None) -> tuple[str, str, str]:
        # The user in the key: a user who takes an address over never sees the keys of one who
        # left it, whether or not `forget` reached Redis when that one left.
        scope = digest(f"{account or 'none'}:{email}")
        failures = self._prefix + scope
        return failures, f"{failures}:{self._client}", f"{self._prefix}known:{scope}"

    async def reserve(self, email: str, account: uuid.UUID | None) -> None:
        """Count this attempt as failed unless this client, or the account, must wait.

        One script call: it reads the failures and whether this client is known, and adds
        this failure, atomically. The keys disappear once their newest entry is too old.
        """
        now, rules = self._now(), self._rules
        # Unique members, so two attempts in the same instant count twice; the client's
        # digest first, so `clear` finds its failures in the account's set.
        member = f"{self._client}:{uuid.uuid4().hex}"
        known_since = repr(now - rules.known_client_seconds) if rules.known_client_seconds else ""
        args: list[str | int] = [repr(now), repr(now - rules.window_seconds), rules.max_attempts]
        args += [repr(rules.window_seconds), repr(rules.max_delay_seconds)]
        args += [math.ceil(rules.window_seconds), member, self._client, known_since]
        keys = list(self._keys(email, account))
        answer: list[Any] = await self._reserve(keys=keys, args=args)
        if answer[0] != 1:
            raise refusal(float(answer[1]))

    async def clear(self, email: str, account: uuid.UUID) -> None:
        """Forget this client's failures for the account and know it (from now, for the period).

        An account holds a few dozen failures at most, and known clients of the period only.
        """
        account_key, client_key, known_key = self._keys(email, account)
        members = await self._redis.zrange(account_key, 0, -1)
        mine = [m for m in members if isinstance(m, bytes) and m.startswith(self._client.encode())]
        period = self._rules.known_client_seconds
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(client_key)
            if mine:
                pipe.zrem(account_key, *mine)
            if period > 0:
                now = self._now()
                pipe.zadd(known_key, {self._client: now})
                pipe.zremrangebyscore(known_key, "-inf", now - period)
                pipe.expire(known_key, math.ceil(period))
            await pipe.execute()

    async def forget(self, email: str, account: uuid.UUID) -> None:
        """Delete the account's keys: its failures, each client's, its known clients.

        A tidy-up: the keys name the user, whom nobody else becomes, and would only expire.

        The clients with failures are read from the account's set (members begin with their
        digest). A client's set whose entries already left the account's set holds failures
        past the window, which `reserve` prunes before it counts. An attempt counted between
        the read and the delete, at the address the account is leaving, may keep its client's
        count: a failure made while the change runs, not one the old account earned.
        """
        account_key, _, known_key = self._keys(email, account)
        members = await self._redis.zrange(account_key, 0, -1)
        names = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        clients = {name.split(":", 1)[0] for name in names}
        await self._redis.delete(
            account_key, known_key, *sorted(f"{account_key}:{client}" for client in clients)
        )
