"""Real processes for tests: a server on a free port, a throw-away Redis, waiting for them."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.harness import free_port
from tests.services import service_unavailable

STARTUP_SECONDS = 30.0


def wait_until(ready: Callable[[], bool], what: str, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_file_lines(log: Path) -> list[dict[str, Any]]:
    """Return each line of a server's log file, parsed.

    JSON lines come as they are; any other line (uvicorn's own before our logging is set up, a
    library's traceback) as `{"event": line, "not_json": True}`. Read lines this way, never by
    matching their text: how a line is spaced is the JSON renderer's business.
    """
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"event": line, "not_json": True})
    return lines


def started_events(log: Path) -> int:
    """How many times an app in this log has finished its start-up (its `startup` event)."""
    return [line.get("event") for line in log_file_lines(log)].count("startup")


def accepts(port: int) -> bool:
    """Whether something on this loopback port accepts a TCP connection now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_workers(
    process: subprocess.Popen[bytes],
    log: Path,
    port: int,
    workers: int,
    *,
    what: str,
    seconds: float = STARTUP_SECONDS,
) -> None:
    """Wait until `workers` app workers have started and their port accepts connections.

    The `startup` event alone does not say a server listens: a worker logs it from the app's
    lifespan, before uvicorn calls `listen()` on the socket its parent bound, and a connection
    in between is refused. Readiness is both: every worker started, and the port accepting.
    """

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{what} exited:\n{log.read_text(errors='replace')}")
        return started_events(log) >= workers and accepts(port)

    wait_until(ready, what, seconds)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and anything it started."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def serves_liveness(process: subprocess.Popen[bytes], url: str) -> bool:
    """Whether the server at `url` answers its liveness probe (it must not have exited)."""
    assert process.poll() is None, "the server exited"
    try:
        return httpx2.get(f"{url}/api/v1/health/live", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


@contextmanager
def server_process(
    args: list[str], log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            args,
            cwd=log.parent,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)


class RedisServer:
    """A throw-away `redis-server` on a free port, without persistence."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            service_unavailable("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = [executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.args += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        self.log = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
                self.args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self.answers, "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def answers(self) -> bool:
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except RedisError:
            return False
        finally:
            client.close()

    def freeze(self) -> None:
        """Stop the process without ending it (SIGSTOP): connections hang, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen process run again (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
