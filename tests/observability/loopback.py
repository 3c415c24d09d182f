"""A real HTTP server on loopback, in a thread, for the tests' webhooks and collectors."""

import threading
from http.server import BaseHTTPRequestHandler
from types import TracebackType

from tests.quiet_http import QuietHTTPServer


class LoopbackServer:
    """Serve `handler` on 127.0.0.1 (a free port) while the `with` block runs."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = QuietHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
