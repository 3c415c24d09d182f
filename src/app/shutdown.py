"""Graceful shutdown under uvicorn: say "going away", keep serving a while, then finish up.

uvicorn stops a worker on SIGTERM at once: it closes the listening socket and waits for the
requests in flight (forever, unless `--timeout-graceful-shutdown`), while readiness kept
answering 200 and the load balancer kept sending. This module takes over the worker's
SIGTERM and SIGINT handlers (`uvicorn.server.Server.handle_exit`, installed before the
lifespan starts) and does what a load-balanced service needs:

1. SIGTERM: `Lifecycle.draining` turns true at once, so readiness answers 503 and responses
   close their connections, while requests are still served for `SHUTDOWN_DRAIN_SECONDS`;
2. then it asks uvicorn to stop (`Server.should_exit`): no new connections are accepted, and
   requests in flight get `SHUTDOWN_GRACE_SECONDS` (uvicorn's graceful-shutdown timeout) to
   finish before they are cancelled; the process exits 0.

SIGINT (Ctrl+C at a terminal) skips the drain; a second SIGINT forces the exit, as in uvicorn.
However uvicorn comes to stop (signal, or `--limit-max-requests` recycling), it first stops
accepting and reads for `ARRIVED_REQUEST_SECONDS` what connections it accepted have sent,
before it closes those that sent nothing (`hear_out_accepted`).
Under another server, or outside the main thread, nothing is installed and that server's own
shutdown applies. `tests/test_shutdown.py` pins the uvicorn attributes this relies on.

A process that had to cancel running jobs (the web process in embedded mode, `app worker`)
also bounds its own end with `exit_by`: a job that ignores its cancellation would otherwise
keep it alive for good.
"""

import asyncio
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
from uvicorn.server import Server

from app.core.lifecycle import Lifecycle
from app.core.logging import flush_logs
from app.jobs.runner import HAND_BACK_DELAY_SECONDS

log = structlog.get_logger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Long enough for the event loop to read what already reached the socket; a client slower to
# send than this sees the close any keep-alive client can see, and sends again.
ARRIVED_REQUEST_SECONDS = 0.1
# Once running jobs were cancelled, the process exits within this long, whatever still runs: a
# job handed back is not due before its process is gone (`HAND_BACK_DELAY_SECONDS`).
EXIT_SECONDS = HAND_BACK_DELAY_SECONDS - 1.0
# How long a forced exit waits for its log lines (its own last one among them) to be written.
FORCED_EXIT_FLUSH_SECONDS = 0.5


def uvicorn_server() -> Server | None:
    """Return the uvicorn server whose signal handler this process runs, if any."""
    if threading.current_thread() is not threading.main_thread():
        return None
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return server if isinstance(server, Server) else None


class GracefulShutdown:
    """The signal handler of one worker: drain, then stop (see the module)."""

    def __init__(
        self, server: Server, lifecycle: Lifecycle, *, drain_seconds: float, grace_seconds: int
    ) -> None:
        self.server = server
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self.grace_seconds = grace_seconds
        self.loop = asyncio.get_running_loop()

    def handle(self, sig: int, _: FrameType | None) -> None:
        """Runs between two bytecodes of the main thread: set flags, schedule the rest."""
        if self.server.should_exit:
            if sig == signal.SIGINT:
                self.server.force_exit = True
            return
        if self.lifecycle.draining and sig == signal.SIGTERM:
            return  # already draining (the parent passes on the SIGTERM a group got too)
        draining_already = self.lifecycle.draining
        self.lifecycle.draining = True  # readiness answers 503 from now on
        if sig == signal.SIGTERM and self.drain_seconds > 0:
            self.loop.call_soon_threadsafe(self._drain)
        else:
            self.loop.call_soon_threadsafe(self._stop, draining_already)

    def _drain(self) -> None:
        log.info("shutdown_draining", seconds=self.drain_seconds, grace=self.grace_seconds)
        self.loop.call_later(self.drain_seconds, self._stop, True)

    def _stop(self, drained: bool) -> None:
        if not self.server.should_exit:
            log.info("shutdown_stopping", drained=drained, grace=self.grace_seconds)
            self.server.should_exit = True


def hear_out_accepted(server: Server) -> None:
    """Make `server` read the requests its accepted connections already sent before it stops.

    uvicorn's shutdown closes every connection without a request in progress at once. One it
    accepted in the same instant may hold a whole request the event loop has not read yet:
    closing a socket with unread bytes resets it, and the client loses a request the server
    never saw (a retiring worker did this to about one recycle in two under concurrent load).
    Stopping the listeners first and giving the loop a moment turns those bytes into requests,
    answered like any other in flight; their connections close after the answer.
    """
    stop = server.shutdown

    async def shutdown(sockets: list[socket.socket] | None = None) -> None:
        for listener in server.servers:
            listener.close()
        if not server.force_exit:
            await asyncio.sleep(ARRIVED_REQUEST_SECONDS)
        await stop(sockets)

    server.shutdown = shutdown  # type: ignore[method-assign]


def install_graceful_shutdown(
    lifecycle: Lifecycle, *, drain_seconds: float, grace_seconds: int
) -> Callable[[], None]:
    """Handle this worker's SIGTERM and SIGINT as described above; return the undo."""
    server = uvicorn_server()
    if server is None:
        return lambda: None
    shutdown = GracefulShutdown(
        server, lifecycle, drain_seconds=drain_seconds, grace_seconds=grace_seconds
    )
    # Requests in flight when uvicorn stops get this long, whatever stopped it.
    server.config.timeout_graceful_shutdown = grace_seconds
    hear_out_accepted(server)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, shutdown.handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def exit_by(seconds: float, event: str) -> None:
    """End the process in `seconds` (exit code 1, logging `event`) if it has not ended by then.

    A job that ignores its cancellation (a call blocking in a thread, a swallowed
    CancelledError) would otherwise keep the process alive: asyncio waits for its task and
    for the threads of its executor, and the interpreter joins them at exit. Such a job still
    holds its lease (or was handed back), so it runs again elsewhere once the lease lapses.
    """

    def force() -> None:
        log.error(event, after=seconds)
        flush_logs(FORCED_EXIT_FLUSH_SECONDS)  # the writer thread holds the lines, not stdout
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True  # a process that ends in time ends with it
    timer.start()
