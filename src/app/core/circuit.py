"""A circuit breaker for a backend that may fail: after a few failures, leave it alone a while.

One breaker guards one client (the process's Redis pool), so every path that uses the client
shares what it learnt: a Redis that is down or frozen costs one timeout per cool-down, not one
per request. Closed, calls go through and consecutive failures are counted; at
`failure_threshold` it opens and every call is refused at once for `cool_down` seconds; then
one call, the probe, goes through (half-open): its success closes the breaker, its failure
opens it again. Calls refused while open or half-open never reach the backend.

Written here rather than taken from a library: the ones on PyPI either wrap one function
per breaker (we guard a connection pool that scripts, locks and pipelines all use), admit
every concurrent caller while half-open (each would pay the timeout again), or support asyncio
only through Tornado.
"""

import enum
import math
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class State(enum.Enum):
    """Where the breaker is: letting calls through, refusing them, or letting one probe by."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts a backend's consecutive failures and says whether to call it (see the module)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        cool_down: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1.")
        if cool_down <= 0:
            raise ValueError("cool_down must be more than zero seconds.")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.failures = 0  # every failure ever counted, for metrics
        self.refused = 0  # calls refused while open or half-open, for metrics
        self._clock = clock
        self._state = State.CLOSED
        self._consecutive = 0
        self._until = 0.0  # open: when the probe may go; half-open: when a lost probe lapses

    @property
    def state(self) -> State:
        """The current state (an open breaker whose cool-down ended says so on the next call)."""
        return self._state

    @property
    def retry_after(self) -> int:
        """Whole seconds until the breaker lets a call through again (at least 1)."""
        return max(1, math.ceil(self._until - self._clock()))

    def allow(self) -> bool:
        """Whether a call may go to the backend now; the caller reports how it went."""
        if self._state is State.CLOSED:
            return True
        now = self._clock()
        if now < self._until:
            self.refused += 1
            return False
        # The cool-down is over (or a probe never reported back): this caller is the probe.
        if self._state is State.OPEN:
            log.info("circuit_half_open", circuit=self.name)
        self._state = State.HALF_OPEN
        self._until = now + self.cool_down
        return True

    def succeeded(self) -> None:
        """Report a call that the backend answered."""
        if self._state is State.CLOSED:
            self._consecutive = 0
        elif self._state is State.HALF_OPEN:
            # While open, late answers to calls admitted before it opened change nothing: the
            # backend may answer some calls and time out on most. A probe's answer closes it.
            self._state = State.CLOSED
            self._consecutive = 0
            log.info("circuit_closed", circuit=self.name)

    def failed(self) -> None:
        """Report a call that failed (an error or a timeout talking to the backend)."""
        self.failures += 1
        if self._state is State.OPEN:
            return  # calls admitted before it opened, failing late: the cool-down stands
        self._consecutive += 1
        if self._state is State.HALF_OPEN or self._consecutive >= self.failure_threshold:
            if self._state is State.CLOSED:
                log.warning(
                    "circuit_opened",
                    circuit=self.name,
                    failures=self._consecutive,
                    cool_down=self.cool_down,
                )
            self._state = State.OPEN
            self._until = self._clock() + self.cool_down
