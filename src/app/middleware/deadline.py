"""Request deadlines: a request that runs too long is stopped and answered with a problem."""

import asyncio

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.deadline import SCOPE_KEY, RequestDeadline, deadline_scope
from app.core.errors import AppError, DeadlineExceededError, UpstreamTimeoutError
from app.core.problems import ProblemRenderer

log = structlog.get_logger(__name__)


class DeadlineMiddleware:
    """Stop every HTTP request `seconds` after it arrived; answer 503 (504 if it was upstream).

    Stopping cancels whatever the request awaits: a query (its connection is dropped and
    replaced, so it goes back to nobody), a wait for a pooled connection, a call to Redis or
    another service. The answer is 503 `deadline_exceeded` with `Retry-After`, or 504
    `upstream_timeout` when the request was waiting on a call marked `upstream_call()`.
    It is sent when the deadline passes, from a task of its own: the stopped work's clean-up
    (closing a connection to a database that stopped answering, say) may take longer, and
    goes on after the answer; whatever the stopped request still sends is dropped.
    Routes change their own deadline with `core.deadline.request_timeout`. Once the response
    is sent the deadline is lifted, so background tasks (mail) are not cut short by it.
    """

    def __init__(self, app: ASGIApp, *, seconds: float, renderer: ProblemRenderer) -> None:
        if seconds <= 0:
            raise ValueError("seconds must be more than zero.")
        self.app = app
        self.seconds = seconds
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False
        answer: asyncio.Task[None] | None = None

        async def send_and_track(message: Message) -> None:
            nonlocal response_started
            if answer is not None:
                return  # the client has had its answer: the stopped request's own is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                deadline.lift()

        def answer_now() -> None:
            nonlocal answer
            if not response_started:  # else too late for a problem
                answer = asyncio.create_task(self._stopped(deadline, scope, receive, send))

        timeout = asyncio.timeout(None)  # a cancellation scope: the deadline keeps the timer
        deadline = RequestDeadline(
            timeout,
            seconds=self.seconds,
            started=asyncio.get_running_loop().time(),
            on_passed=answer_now,
        )
        scope[SCOPE_KEY] = deadline
        try:
            async with timeout:
                with deadline_scope(deadline):
                    await self.app(scope, receive, send_and_track)
        except TimeoutError:
            if not timeout.expired():
                raise  # a timeout of the app's own, not the deadline: the app's error
            if answer is None:
                # Too late for a problem: the server drops the connection mid-response.
                log.warning("deadline_exceeded_after_response_started", path=scope["path"])
        finally:
            deadline.lift()  # however the request ended, its timer must not outlive it
            if answer is not None:
                await answer

    async def _stopped(
        self, deadline: RequestDeadline, scope: Scope, receive: Receive, send: Send
    ) -> None:
        error: AppError
        if deadline.passed_upstream:
            error = UpstreamTimeoutError(
                f"An upstream service did not answer within {deadline.seconds:g} seconds."
            )
        else:
            error = DeadlineExceededError(
                f"The request did not finish within {deadline.seconds:g} seconds; retry shortly.",
                retry_after=1,
            )
        log.warning(
            "deadline_exceeded",
            path=scope["path"],
            seconds=deadline.seconds,
            upstream=deadline.passed_upstream,
        )
        await self.renderer.from_exception(scope, error)(scope, receive, send)
