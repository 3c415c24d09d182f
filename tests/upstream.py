"""An upstream service that fails on purpose: a real HTTP server on loopback, in a thread.

It answers every method from a script of outcomes (a status, `"drop"` to close the connection
without an answer, or a delay before answering) and counts, server-side, every request it
received, so a test can tell retries and refusals apart from what the client reports.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx2

from app.infra.http import HostBreakers, ResilientTransport
from tests.harness import FakeClock
from tests.jwks import serving
from tests.quiet_http import QuietHTTPServer


@dataclass
class Outcome:
    """What the upstream does with one request."""

    status: int = 200
    drop: bool = False  # close the connection without answering
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds between two bytes of the answer (a 1 KiB body), from its first byte or, with
    # `drip_body`, once its head is sent whole: each read gets a byte, long before a timeout.
    drip: float = 0.0
    drip_body: bool = False


class Upstream(QuietHTTPServer):
    """Answers from `script` (then `otherwise`) and records what it received."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Outcome] = []
        self.otherwise = Outcome()
        self.received: list[tuple[str, dict[str, str]]] = []  # (method, headers)
        self.release = threading.Event()  # ends pending delays at teardown
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/resource"

    @property
    def hits(self) -> int:
        return len(self.received)

    def answer(self, *outcomes: Outcome, otherwise: Outcome | None = None) -> None:
        """Answer the next requests with `outcomes`, then every later one with `otherwise`."""
        self.script = list(outcomes)
        self.otherwise = otherwise or Outcome()

    def next_outcome(self, method: str, headers: dict[str, str]) -> Outcome:
        with self.lock:
            self.received.append((method, headers))
            return self.script.pop(0) if self.script else self.otherwise


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, Upstream)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        outcome = server.next_outcome(self.command, dict(self.headers.items()))
        if outcome.delay:
            server.release.wait(outcome.delay)
        if outcome.drop:
            self.close_connection = True
            return
        if outcome.drip:
            self._drip(outcome, server)
            return
        try:
            self.send_response(outcome.status)
            for name, value in outcome.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"{}")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _drip(self, outcome: Outcome, server: "Upstream") -> None:
        head = b"HTTP/1.1 %d OK\r\nContent-Length: 1024\r\n\r\n" % outcome.status
        answer = head + b"x" * 1024
        if outcome.drip_body:
            self.wfile.write(head)
            answer = answer[len(head) :]
        self.close_connection = True
        try:
            for byte in answer:
                if server.release.wait(outcome.drip):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    # http.server dispatches on these names.
    do_GET = do_HEAD = do_OPTIONS = do_PUT = do_DELETE = do_TRACE = do_POST = do_PATCH = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def upstream() -> Iterator[Upstream]:
    """Serve an `Upstream` from a thread; on exit end pending delays and free its port."""
    with serving(Upstream()) as server:
        yield server


def resilient_client(
    *,
    retries: int = 2,
    threshold: int = 100,
    reset: float = 60.0,
    clock: FakeClock | None = None,
    read_timeout: float = 2.0,
    wait_initial: float = 0.01,
    wait_max: float = 0.02,
    wait_jitter: float = 0.01,
    total_timeout: float | None = None,
) -> httpx2.AsyncClient:
    """A client like the app's, with short waits and (optionally) a clock the test moves."""
    breakers = HostBreakers(
        failure_threshold=threshold, reset_seconds=reset, clock=clock or FakeClock()
    )
    transport = ResilientTransport(
        httpx2.AsyncHTTPTransport(),
        retries=retries,
        breakers=breakers,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_jitter=wait_jitter,
        total_timeout=total_timeout,
    )
    timeout = httpx2.Timeout(2.0, read=read_timeout)
    return httpx2.AsyncClient(transport=transport, timeout=timeout)
