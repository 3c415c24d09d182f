"""The two rules of the login throttle, shared by its stores (see `app.auth.throttle`)."""

import hashlib
import math
import uuid
from dataclasses import dataclass
from typing import Protocol

from app.core.errors import RateLimitedError

BLOCKED_DETAIL = "Too many failed logins for this account; try again later."


class LoginThrottle(Protocol):
    """Counts the failed password checks of one client for an account, and of the account.

    An account is its address and the user holding it (`account`: None while no user does).
    The database store keys by address only and forgets within the change's transaction; the
    Redis store keys by both, so what one user earned never applies to the next at that
    address, even when Redis missed the change that took the address away.
    """

    async def reserve(self, email: str, account: uuid.UUID | None) -> None:
        """Count an attempt at `email`'s password as failed, before it is checked.

        Raises:
            RateLimitedError: This client, or the account, must wait; nothing was counted.
        """

    async def clear(self, email: str, account: uuid.UUID) -> None:
        """Forget this client's failures for the account, and know it: it proved the password."""

    async def forget(self, email: str, account: uuid.UUID) -> None:
        """Forget every client's failures for the account, and every client known to it.

        For an address that no longer names the account that earned them (the account was
        deleted, or moved to another email): whoever registers it next starts afresh.
        """


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """The numbers of the two rules, and how long a client that proved the password is known."""

    max_attempts: int
    window_seconds: float
    max_delay_seconds: float
    # 0: no client is ever known, every one waits out the account's delay.
    known_client_seconds: float = 0.0

    @property
    def account_failures_needed(self) -> int:
        """How many of an account's newest failures decide its delay (past them it is capped)."""
        return self.max_attempts + math.ceil(math.log2(max(self.max_delay_seconds, 1))) + 1

    def is_known(self, now: float, last_success: float | None) -> bool:
        """Whether a client whose newest success at the account was at `last_success` is known."""
        if last_success is None or self.known_client_seconds <= 0:
            return False
        return last_success > now - self.known_client_seconds

    def wait(self, now: float, client: list[float], account: list[float], *, known: bool) -> float:
        """Seconds to wait, given failure times newest first (of this client, of the account).

        A known client is held by its own failures only: the account's delay, which strangers'
        failures keep running, is for clients that never proved the password.
        """
        waits = [0.0]
        if len(client) >= self.max_attempts:
            waits.append(client[self.max_attempts - 1] + self.window_seconds - now)
        excess = len(account) - self.max_attempts
        if excess >= 0 and not known:
            waits.append(account[0] + min(2.0**excess, self.max_delay_seconds) - now)
        return max(waits)

    def check(self, now: float, client: list[float], account: list[float], *, known: bool) -> None:
        """Raise `RateLimitedError` with `Retry-After` when there is a wait."""
        seconds = self.wait(now, client, account, known=known)
        if seconds > 0:
            raise refusal(seconds)


def refusal(seconds: float) -> RateLimitedError:
    """The 429 of an attempt that must wait `seconds`."""
    # Whole seconds, rounded up: retrying after Retry-After must not be refused again.
    return RateLimitedError(BLOCKED_DETAIL, retry_after=max(1, math.ceil(seconds)))


def digest(text: str) -> str:
    """The SHA-256 hex digest of `text`: keeps addresses out of key listings, dumps and tools."""
    return hashlib.sha256(text.encode()).hexdigest()
