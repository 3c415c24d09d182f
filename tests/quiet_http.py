"""A threaded HTTP server for the tests' fake services, quiet about clients that hang up."""

import sys
from http.server import ThreadingHTTPServer
from socket import socket
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` that does not print a traceback when a client drops the connection.

    The code under test may hang up first (its timeouts are what some tests check): that is no
    error of the fake service's, and its traceback in the middle of the run would only hide
    real ones.
    """

    daemon_threads = True

    def handle_error(self, request: socket | tuple[bytes, socket], client_address: Any) -> None:
        """Print other errors as the standard library does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
