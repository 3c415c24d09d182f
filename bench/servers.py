"""What every benchmark needs: a migrated database, a real server on a free port, and wrk."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
APP = ["--factory", "app.main:create_app"]
# The PostgreSQL server benchmarks create their databases on (the tests' local one by default).
POSTGRES_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def migrate(env: dict[str, str]) -> None:
    """Apply every migration to the DATABASE_URL in `env`."""
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


def _drain(stream: IO[bytes]) -> None:
    # Read the server's log pipe so that writing logs never blocks the server.
    for _ in iter(stream.readline, b""):
        pass


@contextmanager
def running(
    target: list[str], env: dict[str, str], ready_path: str = "/health", workers: int = 1
) -> Iterator[int]:
    """Run uvicorn (`workers` workers, uvloop, httptools) on `target`; yield its port once
    `ready_path` answers."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--no-access-log",
               "--no-proxy-headers", "--loop", "uvloop", "--http", "httptools",
               "--workers", str(workers)]  # fmt: skip
    # No load balancer to tell: stop at once on SIGTERM (see docs/resilience.md).
    env = {"SHUTDOWN_DRAIN_SECONDS": "0", **env}
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert server.stdout is not None
    threading.Thread(target=_drain, args=(server.stdout,), daemon=True).start()
    try:
        _wait_until_up(port, ready_path)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_until_up(port: int, path: str) -> None:
    deadline = time.monotonic() + 90  # workers import the whole app: slow on a busy machine
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def requests_per_second(
    port: int, path: str, *, seconds: int, connections: int, script: Path, warm_up: bool = True
) -> float:
    """Load `path` with wrk (driven by the Lua `script`) and return the requests per second."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    load = [wrk, "-t1", "-s", str(script), "--latency", f"http://127.0.0.1:{port}{path}"]
    if warm_up:
        subprocess.run([*load, "-c8", "-d2s"], capture_output=True, check=True)
    result = subprocess.run(
        [*load, f"-c{connections}", f"-d{seconds}s"], capture_output=True, text=True, check=True
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError("some responses were not 2xx:\n" + result.stdout)
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(result.stdout)
    return float(match.group(1))


async def fresh_postgres_database(name: str) -> str:
    """Drop and create database `name` on the benchmark server; return its SQLAlchemy URL."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL benchmarks

    connection = await asyncpg.connect(
        POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
