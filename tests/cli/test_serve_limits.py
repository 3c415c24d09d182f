"""`app serve` bounds each request's head in time and size, over raw sockets to a real server.

Two workers, so the bounds reach worker processes through the pickled configuration.
"""

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_serve import serving
from tests.processes import log_file_lines, wait_until

HEAD_SECONDS = 1.0
HEAD_BYTES = 4096
LIVE = b"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@dataclass(frozen=True)
class Served:
    port: int
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("serve-limits")
    limits = {
        "REQUEST_HEADER_TIMEOUT_SECONDS": str(HEAD_SECONDS),
        "MAX_REQUEST_HEADER_BYTES": str(HEAD_BYTES),
    }
    with serving(directory, "--workers", "2", **limits) as (url, _, log):
        yield Served(int(url.rsplit(":", 1)[1]), log)


def connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=10)


def read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (f.split(": ", 1) for f in fields)}
    return int(status_line.split()[1]), headers, body


def head_of(size: int) -> bytes:
    """A liveness request (closing its connection) whose line and headers are `size` bytes."""
    prefix, end = LIVE + b"Connection: close\r\nX-Padding: ", b"\r\n\r\n"
    return prefix + b"a" * (size - len(prefix) - len(end)) + end


def assert_problem(response: bytes, status: int, code: str) -> dict[str, object]:
    got, headers, body = split(response)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem: dict[str, object] = json.loads(body)
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["request_id"] == headers["x-request-id"]
    assert str(problem["type"]).endswith(code.replace("_", "-"))
    return problem


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with connect(served) as connection:
        started = time.monotonic()
        assert read_all(connection) == b""  # closed, and nothing was asked so nothing answered
        assert HEAD_SECONDS * 0.8 < time.monotonic() - started < HEAD_SECONDS + 5


def test_a_head_trickled_slower_than_the_timeout_gets_408(served: Served) -> None:
    with connect(served) as connection:
        connection.sendall(LIVE)
        started = time.monotonic()
        for _ in range(50):  # a header line every 0.1 s, never done, until an answer comes
            connection.sendall(b"X-Slow: 1\r\n")
            if select.select([connection], [], [], 0.1)[0]:
                break
        response = read_all(connection)
        assert time.monotonic() - started < HEAD_SECONDS + 5
    problem = assert_problem(response, 408, "request_timeout")
    assert "headers" in str(problem["detail"])


def test_a_head_in_pieces_within_the_timeout_is_served(served: Served) -> None:
    with connect(served) as connection:
        for piece in (LIVE[:10], LIVE[10:], b"Connection: close\r\n", b"\r\n"):
            connection.sendall(piece)
            time.sleep(HEAD_SECONDS / 5)
        status, _, body = split(read_all(connection))
    assert (status, body) == (200, b'{"status":"ok"}')


def test_idle_time_between_requests_is_not_head_time(served: Served) -> None:
    with connect(served) as connection:
        connection.sendall(LIVE + b"\r\n")
        assert split(connection.recv(65536))[0] == 200
        time.sleep(HEAD_SECONDS * 1.5)  # idle, inside uvicorn's keep-alive (5 s)
        connection.sendall(LIVE + b"Connection: close\r\n\r\n")
        assert split(read_all(connection))[0] == 200


@pytest.mark.parametrize(
    ("size", "status"),
    [(HEAD_BYTES - 1, 200), (HEAD_BYTES, 200), (HEAD_BYTES + 1, 431), (HEAD_BYTES * 64, 431)],
    ids=["under", "at", "one-over", "far-over"],
)
def test_a_head_over_the_limit_gets_431(served: Served, size: int, status: int) -> None:
    request = head_of(size)
    assert len(request) == size
    with connect(served) as connection:
        connection.sendall(request)
        response = read_all(connection)
    if status == 431:
        assert_problem(response, 431, "request_header_too_large")
    else:
        assert split(response)[0] == 200


def test_a_large_body_sent_with_its_head_is_read_as_body(served: Served) -> None:
    body = json.dumps({"email": "body@example.com", "password": "x" * 8}).encode()
    body += b" " * (HEAD_BYTES * 16)  # JSON allows the trailing blanks
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with connect(served) as connection:
        connection.sendall(head + body)  # one write: head and body reach the server together
        status, _, _ = split(read_all(connection))
    assert status in (201, 422)  # the app judged the account, not the server the head


def test_pipelined_requests_are_all_answered(served: Served) -> None:
    with connect(served) as connection:
        connection.sendall(LIVE + b"\r\n" + LIVE + b"\r\n" + LIVE + b"Connection: close\r\n\r\n")
        response = read_all(connection)
    assert response.count(b"HTTP/1.1 200 OK") == 3


def test_refusals_are_logged(served: Served) -> None:
    with connect(served) as connection:
        connection.sendall(head_of(HEAD_BYTES * 2))
        assert_problem(read_all(connection), 431, "request_header_too_large")

    def refusals() -> list[dict[str, object]]:
        lines = log_file_lines(served.log)
        return [line for line in lines if line.get("event") == "request_head_refused"]

    # A flood of refusals is one line per interval (`core.log_repeats`): this one, or an
    # earlier one of the same kind, is there.
    wait_until(lambda: any(line["status"] == 431 for line in refusals()), "a 431 logged", 10)
    line = next(line for line in refusals() if line["status"] == 431)
    assert (line["code"], line["peer"], line["level"]) == (
        "request_header_too_large",
        "127.0.0.1",
        "warning",
    )
    assert uuid.UUID(str(line["request_id"]))


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"get /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",  # obs-fold
    (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
    ),
]


def test_every_request_the_parser_refuses_gets_a_400_problem(served: Served) -> None:
    """Each one, also within the interval its repeated warning is left out of the log in."""
    for _ in range(2):
        for request in MALFORMED:
            with connect(served) as connection:
                connection.sendall(request)
                assert_problem(read_all(connection), 400, "bad_request")


def test_an_offered_upgrade_is_declined_by_answering_every_time(served: Served) -> None:
    """What `curl --http2 http://...` sends: answered over HTTP/1.1, however often."""
    offer = LIVE + b"Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n"
    offer += b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    for _ in range(3):
        with connect(served) as connection:
            connection.sendall(offer)
            assert split(read_all(connection))[0] == 200


def test_a_websocket_upgrade_is_not_taken_nor_its_query_logged(served: Served) -> None:
    """The API has no WebSocket route; the request is an ordinary GET, logged by its path."""
    with connect(served) as connection:
        connection.sendall(
            b"GET /api/v1/health/live?token=ResetTok3nInQuery HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        status, _, _ = split(read_all(connection))
    assert status == 200  # the HTTP route answered

    def answered() -> bool:
        lines = log_file_lines(served.log)
        return any(line.get("path") == "/api/v1/health/live" for line in lines)

    wait_until(answered, "the access line", 10)
    assert "ResetTok3nInQuery" not in served.log.read_text(errors="replace")
