"""What the rate limiter asks of its storage: quotas in, one decision out, in one call.

Here in `core` because both sides name these types: the middleware (which may import `core`
only) calls a `QuotaStore`, and `infra.rate_limit_storage` implements it in memory and Redis.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Strategy = Literal["moving-window", "sliding-window-counter"]
STRATEGIES: tuple[Strategy, ...] = ("moving-window", "sliding-window-counter")


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` requests in any `seconds`-long window; `name` labels it and its counts.

    Two quotas with equal limits but different names (the general "minute" and the "auth"
    one) keep separate counts.
    """

    name: str
    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its quotas.

    `quota` is, of the quotas that refused the request, the one whose slot frees last (its
    wait covers every other refusing quota's), or, when every quota allowed it, the one
    with the fewest requests left; the first of equals either way. `remaining` is what
    that quota still allows after this request; `reset_after` is how many seconds pass
    before one of its slots frees.
    """

    allowed: bool
    quota: Quota
    remaining: int
    reset_after: float


class QuotaStore(Protocol):
    """Counts requests per client key against quotas, all of them in one storage call."""

    async def hit(self, key: str, quotas: Sequence[Quota]) -> Decision:
        """Count one request of `key` in every quota if each allows it, else in none.

        Args:
            key: Whose counts these are, such as `ip:203.0.113.9` or `user:<id>`.
            quotas: At least one quota, with distinct names.

        Returns:
            The decision of the refusing quota that frees last, or the tightest quota's when
            all allowed it.

        Raises:
            redis.exceptions.RedisError: A Redis store could not be reached or failed.
            OSError: A socket error on the way to Redis.
        """
        ...  # pragma: no cover - a protocol's body is never run
