"""Load shedding: past a cap on requests in flight, answer 503 at once instead of queueing all.

A worker that takes every request shares its database pool among all of them: under a flood
each one waits longer, until all of them time out. Capping what is in flight keeps the
admitted requests fast; the rest get an immediate 503 `overloaded` with `Retry-After`, which
load balancers and clients know to retry elsewhere or later.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import OverloadedError
from app.core.problems import ProblemRenderer
from app.middleware.scope import PathSet


class LoadShedMiddleware:
    """At most `max_concurrent` HTTP requests at once; `max_queued` more wait their turn.

    A request that finds every slot taken waits in a first-in, first-out queue for up to
    `queue_timeout` seconds; when the queue is full too, or the wait runs out, it is answered
    503 `overloaded` without running. Paths in `exempt` (and below them) always run: health
    probes must answer while the worker is busy, and metrics must show why.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrent: int,
        max_queued: int,
        queue_timeout: float,
        renderer: ProblemRenderer,
        exempt: Collection[str] = (),
        retry_after: int = 1,
    ) -> None:
        if max_concurrent < 1 or max_queued < 0 or queue_timeout < 0 or retry_after < 1:
            raise ValueError(
                "max_concurrent and retry_after must be at least 1, "
                "max_queued and queue_timeout zero or more."
            )
        self.exempt = PathSet(exempt)
        self.app = app
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.renderer = renderer
        self.retry_after = retry_after
        self.in_flight = 0
        self.shed = 0  # requests refused since start, for metrics
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.covers(scope):
            await self.app(scope, receive, send)
            return
        if not await self._admitted():
            self.shed += 1
            error = OverloadedError(
                "The server is handling as many requests as it can; retry shortly.",
                retry_after=self.retry_after,
            )
            await self.renderer.from_exception(scope, error)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _admitted(self) -> bool:
        """Take a slot now, or after waiting in the queue; False when there is none."""
        if self.in_flight < self.max_concurrent and not self._waiting:
            self.in_flight += 1
            return True
        if len(self._waiting) >= self.max_queued:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await turn  # `_release` hands its slot over, `in_flight` unchanged
        except TimeoutError:
            pass
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as this request was cancelled
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(turn)
        # Handed a slot even when the wait ran out at that very moment: take it.
        return turn.done() and not turn.cancelled()

    def _release(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_flight -= 1
