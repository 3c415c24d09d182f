"""The rate limiter's counts in Redis: every quota of a request checked in one script call.

One `EVALSHA` per request, whatever the number of quotas: the script reads every window,
and records the request in all of them only if each allows it; when some refuse, it answers
for the one that frees a slot last. redis-py's registered script sends the script itself
again (`SCRIPT LOAD`) when Redis answers NOSCRIPT, after a restart or a `SCRIPT FLUSH`. Every
key has a PEXPIRE as long as the counts in it matter, so keys of clients that went away
disappear on their own.

The scripts read the time with Redis's `TIME`, not the caller's clock: every worker and node
then measures windows on one clock, however far their own clocks drift apart, and the script
answers times relative to that clock's now, so the caller never compares the two. (`TIME` in
a writing script is allowed since Redis 5: scripts are replicated by their effects.)
"""

import itertools
import secrets
from collections.abc import Sequence

from redis.asyncio import Redis

from app.core.quotas import STRATEGIES, Decision, Quota, Strategy

# Both scripts take KEYS[i] for quota i, and its limit and seconds at ARGV[2i] and ARGV[2i+1];
# ARGV[1] is a member unique to this request, which only the moving window needs. They answer
# {allowed (1 or 0), i, remaining, reset after (µs)} for the refusing quota whose slot frees
# last (every quota is checked, so Retry-After covers them all) or, when all allowed the
# request, for the one with the fewest requests left; the first of equals either way.

# KEYS[i]: a sorted set of the requests quota i accepted, each a unique member (two requests
# may share a microsecond) scored by its time in µs.
MOVING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local counts, refused, wait = {}, 0, 0
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) * 1000000
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  if counts[i] >= limit then
    -- A slot frees when the count drops below the limit: as this request leaves the window
    -- (the oldest one, unless the limit was lowered since the set filled).
    local frees = redis.call('ZRANGE', key, counts[i] - limit, counts[i] - limit, 'WITHSCORES')
    local reset = tonumber(frees[2]) + window - now
    if refused == 0 or reset > wait then refused, wait = i, reset end
  end
end
if refused > 0 then return {0, refused, 0, wait} end
local best, fewest, reset = 0, 0, 0
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) * 1000000
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, window / 1000)
  local left = limit - counts[i] - 1
  if best == 0 or left < fewest then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    best, fewest, reset = i, left, tonumber(oldest[2]) + window - now
  end
end
return {1, best, fewest, reset}
"""

# KEYS[i]: a hash of quota i's fixed window number `w`, its count `c` and the previous
# window's count `p`. The weighting and reset are `MemoryQuotaStore`'s, to the letter.
SLIDING_WINDOW_COUNTER = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function reset_after(window, previous, current, left)
  local reset = nil
  if previous > 0 then reset = left % (window / previous) end
  if current > 0 and (reset == nil or left % window < reset) then reset = left % window end
  return math.floor((reset or 0) * 1000000)
end
local seen, refused, wait = {}, 0, 0
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local index = math.floor(now / window)
  local state = redis.call('HMGET', key, 'w', 'c', 'p')
  local stored, previous, current = tonumber(state[1]), 0, 0
  if stored == index then
    previous, current = tonumber(state[3]), tonumber(state[2])
  elseif stored == index - 1 then
    previous = tonumber(state[2])
  end
  local left = (index + 1) * window - now
  if math.floor(previous * left / window + current) + 1 > limit then
    local reset = reset_after(window, previous, current, left)
    if refused == 0 or reset > wait then refused, wait = i, reset end
  end
  seen[i] = {index, previous, current, left}
end
if refused > 0 then return {0, refused, 0, wait} end
local best, fewest, reset = 0, 0, 0
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local index, previous, current, left = unpack(seen[i])
  redis.call('HSET', key, 'w', index, 'c', current + 1, 'p', previous)
  -- This window's count is the previous one's during the next window.
  redis.call('PEXPIRE', key, window * 2000)
  local remaining = limit - math.floor(previous * left / window + current + 1)
  if best == 0 or remaining < fewest then
    best, fewest, reset = i, remaining, reset_after(window, previous, current + 1, left)
  end
end
return {1, best, fewest, reset}
"""

SCRIPTS: dict[Strategy, str] = {
    "moving-window": MOVING_WINDOW,
    "sliding-window-counter": SLIDING_WINDOW_COUNTER,
}
# Part of every key: switching strategies must not hand one script the other's data type.
_KEY_TAGS: dict[Strategy, str] = {"moving-window": "mw", "sliding-window-counter": "swc"}


class RedisQuotaStore:
    """Counts in Redis, shared by every worker and node that uses the same `prefix`.

    Keys are `<prefix><strategy>:{<client key>}:<quota name>:<seconds>`: the braces put all of
    one client's keys in one Redis Cluster slot, where one script may touch them together.
    """

    def __init__(self, redis: Redis, *, prefix: str, strategy: Strategy) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, not {strategy!r}.")
        self.redis = redis
        self.prefix = prefix + _KEY_TAGS[strategy]
        self.strategy = strategy
        self.script = redis.register_script(SCRIPTS[strategy])
        # Moving-window members: unique across processes without a round trip to ask Redis.
        self._members = map(f"{secrets.token_hex(6)}:{{}}".format, itertools.count())

    def keys_of(self, key: str, quotas: Sequence[Quota]) -> list[str]:
        """The Redis keys that hold `key`'s counts for `quotas`, in order."""
        return [f"{self.prefix}:{{{key}}}:{quota.name}:{quota.seconds}" for quota in quotas]

    async def hit(self, key: str, quotas: Sequence[Quota]) -> Decision:
        """Count one request of `key` in every quota if each allows it, else in none.

        Raises:
            redis.exceptions.RedisError: Redis could not be reached, or the pool's circuit
                breaker refused the call.
            OSError: A socket error on the way to Redis.
        """
        args: list[str | int] = [next(self._members)]
        for quota in quotas:
            args += [quota.limit, quota.seconds]
        answer: list[int] = await self.script(keys=self.keys_of(key, quotas), args=args)
        allowed, index, remaining, reset = answer
        return Decision(allowed == 1, quotas[index - 1], remaining, reset / 1_000_000)
