"""What uvicorn leaves unbounded: how long a request's head may take, and how large it may be.

uvicorn reads a request's head (its request line and header fields) with no deadline and no
size limit: a connection that sends nothing, or trickles a header a byte at a time, holds its
socket forever (slowloris), and a header of hundreds of megabytes is buffered whole before
the app sees it. `app serve` runs uvicorn with `BoundedHttpToolsProtocol` (through
`ServerConfig`), which adds both bounds to uvicorn's own httptools protocol:

- `REQUEST_HEADER_TIMEOUT_SECONDS`: from a connection's start, and from the first byte of each
  later request on it, the head must be complete in time. Past it the connection is closed,
  with a 408 problem if part of a head arrived (a connection that sent nothing gets no answer).
- `MAX_REQUEST_HEADER_BYTES`: a head larger than this is answered 431 and the connection
  closed; at most this much (plus one read from the socket) is buffered.

Only the head is bounded here: a body's time and size are the app's (`BodyReadMiddleware`,
`MAX_REQUEST_BODY_BYTES`), which answer with the request id and the app's headers.
"""

import json
import uuid
from asyncio import TimerHandle
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.errors import (
    AppError,
    BadRequestError,
    RequestHeaderTooLargeError,
    RequestTimeoutError,
)
from app.core.problems import PROBLEM_MEDIA_TYPE, ProblemRenderer

log = structlog.get_logger(__name__)

# How long a refused connection reads and drops what its client still sends before it closes.
LINGER_SECONDS = 2.0


class ServerConfig(Config):
    """uvicorn's configuration with the bounds `BoundedHttpToolsProtocol` enforces.

    It is pickled to each worker process as it is, so it carries plain values only.
    """

    def __init__(
        self,
        app: Any,
        *,
        header_timeout: float,
        max_header_bytes: int,
        problem_type_base_url: str,
        **options: Any,
    ) -> None:
        # No WebSocket handling: the API has no WebSocket route, and uvicorn's would answer an
        # upgrade with a bare 403 and log its path with the query string (tokens and all).
        super().__init__(app, http=BoundedHttpToolsProtocol, ws="none", **options)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.problem_type_base_url = problem_type_base_url


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        if not isinstance(config, ServerConfig):
            raise TypeError("BoundedHttpToolsProtocol runs with a ServerConfig.")
        super().__init__(config, *args, **kwargs)
        self._limits = config
        self._problems = ProblemRenderer(config.problem_type_base_url)  # for its `type` URIs
        self._head_timer: TimerHandle | None = None
        self._reading_head = True  # until the head of the request being read is complete
        self._head_bytes = 0  # bytes received since that request began
        self._discarding = False  # refused: what still arrives is dropped until the close

    def connection_made(self, transport: Any) -> None:  # noqa: D102 - uvicorn's
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends is closed as well

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102 - uvicorn's
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:  # noqa: D102 - uvicorn's
        if self._discarding:
            return  # the rest of a refused request
        if not self._reading_head:
            super().data_received(data)
            return
        if self._head_timer is None:
            self._arm_head_timer()  # the first byte of a request after the one before
        room = self._limits.max_header_bytes - self._head_bytes
        self._head_bytes += min(len(data), room)
        if len(data) <= room:
            super().data_received(data)
            return
        # Parse only up to the limit: past it, what matters is whether the head ended there.
        super().data_received(data[:room])
        if self._discarding or self.transport.is_closing():
            return  # the parser refused it (400)
        if not self._head_complete():
            limit = self._limits.max_header_bytes
            detail = f"The request line and headers are over {limit} bytes."
            self._refuse(RequestHeaderTooLargeError(detail))
            return
        super().data_received(data[room:])

    def send_400_response(self, msg: str) -> None:
        """Answer what the HTTP parser refused as a problem, like every other error."""
        del msg  # uvicorn's text ("Invalid HTTP request received."): the detail says it
        self._refuse(BadRequestError("The request is not valid HTTP/1.1."))

    def _unsupported_upgrade_warning(self) -> None:
        # An offered upgrade (h2c, websocket) is declined by answering over HTTP/1.1, which RFC
        # 9110 allows; uvicorn's two warnings a request said nothing an operator can act on.
        return

    def on_headers_complete(self) -> None:  # noqa: D102 - uvicorn's
        self._reading_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:  # noqa: D102 - uvicorn's
        # Whatever comes next on this connection is the head of another request.
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def _head_complete(self) -> bool:
        # A method, so the type checker does not carry `_reading_head` across the parse.
        return not self._reading_head

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: it is read after that.
            self._arm_head_timer()
            return
        if not self._head_bytes:
            self.transport.close()  # nothing was asked: nothing to answer
            return
        seconds = self._limits.header_timeout
        detail = f"The request's headers did not arrive in full within {seconds:g} seconds."
        self._refuse(RequestTimeoutError(detail))

    def _linger(self) -> None:
        """Close after the answer, reading (and dropping) what the client still sends a while.

        Closing with its unread bytes in the socket would reset the connection, and a reset can
        discard the answer before the client reads it. The end of the answer is signalled at
        once; the connection closes when the client closes its side, or `LINGER_SECONDS` on.
        """
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _refuse(self, error: AppError) -> None:
        """Answer `error` as a problem before any app saw the request; close the connection."""
        request_id, status, code = str(uuid.uuid4()), error.status_code, error.code
        problem = {
            "type": self._problems.type_uri(code),
            "title": error.title,
            "status": status,
            "detail": error.detail,
            "instance": "",  # the request's path may not have arrived
            "code": code,
            "request_id": request_id,
        }
        body = json.dumps(problem).encode()
        head = [f"HTTP/1.1 {status} {error.title}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            f"content-type: {PROBLEM_MEDIA_TYPE}\r\n".encode(),
            f"content-length: {len(body)}\r\n".encode(),
            f"x-request-id: {request_id}\r\n".encode(),
            b"x-content-type-options: nosniff\r\ncache-control: no-store\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._cancel_head_timer()
        self._linger()
        client = self.client[0] if self.client else None
        log.warning(
            "request_head_refused", status=status, code=code, peer=client, request_id=request_id
        )
