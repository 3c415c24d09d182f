"""Back-off for an optional backend: after a failure, leave it alone for a while."""

import time
from collections.abc import Callable

WARNING_INTERVAL_SECONDS = 5.0


class Backoff:
    """Counts a backend's failures and says when to skip it and when to log again.

    After a failure the backend rests for `interval` seconds, so an unreachable Redis costs
    one failed call per interval instead of one per request. Failures are logged at most once
    every `warning_interval` seconds: an outage must not write a line per request.
    """

    def __init__(
        self,
        interval: float,
        *,
        warning_interval: float = WARNING_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0 or warning_interval < 0:
            raise ValueError("interval and warning_interval must be zero or more seconds.")
        self.interval = interval
        self.warning_interval = warning_interval
        self.failures = 0  # process-wide count, for metrics
        self._clock = clock
        self._resting_until = 0.0
        self._next_warning_at = 0.0

    def resting(self) -> bool:
        """Whether the backend failed less than `interval` seconds ago: skip it."""
        return self._clock() < self._resting_until

    def failed(self) -> bool:
        """Count a failure and start resting; return whether to log it (rate-limited)."""
        now = self._clock()
        self.failures += 1
        self._resting_until = now + self.interval
        if now < self._next_warning_at:
            return False
        self._next_warning_at = now + self.warning_interval
        return True
