"""Request deadlines: how long a request may run, and what it was waiting for when time ran out.

`middleware.deadline.DeadlineMiddleware` gives every request `REQUEST_TIMEOUT_SECONDS`; a
route that needs another deadline says so with `dependencies=[request_timeout(120)]`.
Code that calls another service wraps the call in `upstream_call()`, so a request stopped
while waiting on it answers 504 `upstream_timeout` rather than 503 `deadline_exceeded`.
"""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

SCOPE_KEY = "app.deadline"


class RequestDeadline:
    """The deadline of one request.

    When it passes, the request's task is cancelled through the cancellation scope `timeout`
    (entered with no deadline of its own: this class keeps the timer) and `on_passed` is
    called at once, so the answer need not wait for the stopped work's clean-up.
    """

    def __init__(
        self,
        timeout: asyncio.Timeout,
        *,
        seconds: float,
        started: float,
        on_passed: Callable[[], object] = lambda: None,
    ) -> None:
        self._timeout = timeout
        self._on_passed = on_passed
        self.seconds = seconds
        self.started = started  # the event loop's clock
        self.upstream_calls = 0  # calls to other services in progress
        self.passed_upstream = False  # it passed while a call to another service was waiting
        self._passed = False
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(self.started + self.seconds, self._pass)

    def _pass(self) -> None:
        self._timer = None
        self._passed = True
        self.passed_upstream = self.upstream_calls > 0
        self._timeout.reschedule(asyncio.get_running_loop().time())  # cancels the task
        self._on_passed()

    def extend(self, seconds: float) -> None:
        """Make the deadline `seconds` after the request started (longer or shorter)."""
        if seconds <= 0:
            raise ValueError("A deadline must be more than zero seconds.")
        if self._passed:
            return  # the request is being stopped already
        self.seconds = seconds
        self._arm()

    def remaining(self) -> float:
        """Seconds left before the request is stopped (zero once it passed)."""
        return max(0.0, self.started + self.seconds - asyncio.get_running_loop().time())

    def passed(self) -> bool:
        """Whether the deadline has passed (the request is being stopped)."""
        return self._passed

    def lift(self) -> None:
        """Stop enforcing it (the response is sent; background tasks run without it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_current: ContextVar[RequestDeadline | None] = ContextVar("request_deadline", default=None)


def current_deadline() -> RequestDeadline | None:
    """Return the deadline of the request being handled, if any."""
    return _current.get()


@contextmanager
def deadline_scope(deadline: RequestDeadline) -> Iterator[None]:
    """Make `deadline` the current one for the code run inside."""
    token = _current.set(deadline)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def upstream_call() -> Iterator[None]:
    """Mark a call to another service: a deadline passing meanwhile is the upstream's (504)."""
    deadline = _current.get()
    if deadline is None:
        yield
        return
    deadline.upstream_calls += 1
    try:
        yield
    finally:
        deadline.upstream_calls -= 1


def request_timeout(seconds: float) -> DependsParam:
    """A route dependency that gives the route its own deadline, e.g. for a slow export.

    The database's own limits (`DATABASE_STATEMENT_TIMEOUT_MS`, `DATABASE_POOL_TIMEOUT`)
    still apply to each statement and each wait for a connection.
    """
    if seconds <= 0:
        raise ValueError("A deadline must be more than zero seconds.")

    async def set_deadline(request: Request) -> None:
        deadline = request.scope.get(SCOPE_KEY)
        if isinstance(deadline, RequestDeadline):
            deadline.extend(seconds)

    dependency: DependsParam = Depends(set_deadline)
    return dependency
