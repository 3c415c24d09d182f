"""The shutdown hook (app/shutdown.py) on a real uvicorn `Server`: drain, then stop.

It relies on uvicorn's `Server.handle_exit` being the SIGTERM handler while the lifespan
starts, and on `should_exit`, `force_exit`, `servers`, `shutdown` and
`config.timeout_graceful_shutdown`: these tests break when an upgrade changes them.
tests/e2e/test_shutdown.py sends real signals. The forced exit (`exit_by`) ends a real process.
"""

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from uvicorn import Config
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.server import Server

from app.core.lifecycle import Lifecycle
from app.shutdown import GracefulShutdown, install_graceful_shutdown, uvicorn_server

pytestmark = pytest.mark.anyio
# A process whose interpreter would wait a minute at exit for a thread, as for a stuck job's.
STUCK_AT_EXIT = """
import threading, time
from app.core.logging import configure_logging
from app.core.settings_groups import LoggingSettings
from app.shutdown import exit_by
configure_logging(LoggingSettings(_env_file=None, LOG_FORMAT="json"))
exit_by(0.2, "test_exit_forced")
threading.Thread(target=time.sleep, args=(60,)).start()
"""


@pytest.fixture
def server() -> Server:
    return Server(Config(FastAPI()))


@pytest.fixture
def uvicorn_handlers(server: Server) -> Iterator[None]:
    """Install uvicorn's own handlers, as `Server.serve` does before the lifespan starts."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, server.handle_exit)
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


async def test_sigterm_drains_first_then_asks_uvicorn_to_stop(server: Server) -> None:
    lifecycle = Lifecycle()
    shutdown = GracefulShutdown(server, lifecycle, drain_seconds=0.3, grace_seconds=7)
    shutdown.handle(signal.SIGTERM, None)
    draining_at_once = lifecycle.draining
    await asyncio.sleep(0.1)
    shutdown.handle(signal.SIGTERM, None)  # passed on by the parent too: no change
    stopped_early = server.should_exit  # still serving: the load balancer is told first
    await asyncio.sleep(0.3)
    assert (draining_at_once, stopped_early) == (True, False)
    assert (server.should_exit, server.force_exit) == (True, False)


async def test_sigint_stops_at_once_and_a_second_one_forces(server: Server) -> None:
    lifecycle = Lifecycle()
    shutdown = GracefulShutdown(server, lifecycle, drain_seconds=30, grace_seconds=7)
    shutdown.handle(signal.SIGINT, None)
    await asyncio.sleep(0)
    assert (lifecycle.draining, server.should_exit, server.force_exit) == (True, True, False)
    shutdown.handle(signal.SIGTERM, None)  # the parent's SIGTERM after a terminal's SIGINT
    assert not server.force_exit
    shutdown.handle(signal.SIGINT, None)
    assert server.force_exit


async def test_sigint_while_draining_cuts_the_drain_short(server: Server) -> None:
    shutdown = GracefulShutdown(server, Lifecycle(), drain_seconds=30, grace_seconds=7)
    shutdown.handle(signal.SIGTERM, None)
    shutdown.handle(signal.SIGINT, None)
    await asyncio.sleep(0)
    assert server.should_exit


@pytest.mark.usefixtures("uvicorn_handlers")
async def test_install_takes_over_uvicorns_handlers_and_gives_them_back(server: Server) -> None:
    assert uvicorn_server() is server
    restore = install_graceful_shutdown(Lifecycle(), drain_seconds=1, grace_seconds=9)
    handler = signal.getsignal(signal.SIGTERM)
    assert getattr(handler, "__self__", None).__class__ is GracefulShutdown
    assert signal.getsignal(signal.SIGINT) == handler
    assert server.config.timeout_graceful_shutdown == 9
    restore()
    assert signal.getsignal(signal.SIGTERM) == server.handle_exit


def test_outside_uvicorn_nothing_is_installed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    restore = install_graceful_shutdown(Lifecycle(), drain_seconds=1, grace_seconds=1)
    assert signal.getsignal(signal.SIGTERM) == before
    restore()


async def _hello(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.usefixtures("uvicorn_handlers")
async def test_a_request_that_reached_an_accepted_connection_is_answered_at_stop(
    server: Server,
) -> None:
    """The bytes are in the socket, unread, when the server stops: uvicorn alone resets them."""
    server.config = Config(_hello, lifespan="off")
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    listener = socket.create_server(("127.0.0.1", 0))
    restore = install_graceful_shutdown(Lifecycle(), drain_seconds=0, grace_seconds=5)
    try:
        await server.startup(sockets=[listener])
        with socket.create_connection(listener.getsockname()[:2], timeout=5) as client:
            for _ in range(500):  # until accepted, with nothing read yet
                if server.server_state.connections:
                    break
                await asyncio.sleep(0.01)
            client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")  # no await: stays unread
            await server.shutdown(sockets=[listener])
            answer = client.recv(4096)
    finally:
        restore()
        listener.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\nhello\r\n0\r\n\r\n")  # the whole response


def test_exit_by_ends_a_process_its_threads_would_keep_alive() -> None:
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", STUCK_AT_EXIT],
        capture_output=True,
        text=True,
        timeout=30,  # well under the thread's minute
        check=False,
    )
    assert result.returncode == 1, result.stderr
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert (line["event"], line["level"], line["after"]) == ("test_exit_forced", "error", 0.2)
