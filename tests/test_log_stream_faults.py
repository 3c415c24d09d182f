"""A server whose log stream breaks or stalls keeps serving, and stops when told to.

The log goes to stdout, a pipe to whatever collects it. A collector that went away makes each
write fail with EPIPE; one that hangs lets the pipe fill (64 KiB) and then blocks each write.
Neither may fail a request, stall the event loop, or keep SIGTERM from stopping the server.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import server_env
from tests.harness import free_port
from tests.identity import DEFAULT_PASSWORD
from tests.migrations import migrate
from tests.processes import serves_liveness, stop, wait_until

# Each request logs an access line of a few hundred bytes: this many fill a pipe several times.
REQUESTS = 400


@contextmanager
def served_to_a_pipe(directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    """One uvicorn worker whose stdout is a pipe; yields it, its URL and the pipe's read end."""
    database = f"sqlite+aiosqlite:///{directory / 'live.db'}"
    asyncio.run(migrate(database, "head"))
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--no-proxy-headers", "--no-access-log", "--host", "127.0.0.1", "--port", str(port)]
    read_end, write_end = os.pipe()
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            command,
            cwd=directory,
            env=server_env(DATABASE_URL=database, SHUTDOWN_GRACE_SECONDS="5"),
            stdout=write_end,
            stderr=stderr,
            start_new_session=True,
        )
    os.close(write_end)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: serves_liveness(process, url), "uvicorn", seconds=90)
        yield process, url, read_end
    finally:
        stop(process)
        with contextlib.suppress(OSError):  # the test may have closed it
            os.close(read_end)


@pytest.mark.parametrize("collector", ["gone", "hung"])
def test_a_broken_or_stalled_log_stream_neither_fails_nor_stalls_the_server(
    tmp_path: Path, collector: str
) -> None:
    with served_to_a_pipe(tmp_path) as (process, url, read_end):
        if collector == "gone":
            os.close(read_end)  # every later write meets EPIPE
        # else nobody reads again: the pipe fills, and a plain write would block for good
        statuses: Counter[int | str] = Counter()
        with httpx2.Client(base_url=url, timeout=5) as client:
            for number in range(REQUESTS):
                try:
                    if number % 100 == 0:
                        body = {"email": f"log-{number}@example.com", "password": DEFAULT_PASSWORD}
                        statuses[client.post("/api/v1/users", json=body).status_code] += 1
                    else:
                        statuses[client.get("/api/v1/health/ready").status_code] += 1
                except httpx2.TransportError as exc:
                    statuses[type(exc).__name__] += 1
                    break
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=20)
    assert statuses == {200: REQUESTS - 4, 201: 4}
    assert exit_code == 0
    assert "Traceback" not in (tmp_path / "stderr.log").read_text(errors="replace")
