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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
    target: list[str],
    env: dict[str, str],
    ready_path: str = "/health",
    workers: int = 1,
    *,
    cpu: int | None = None,
    server: str = "uvicorn",
    cwd: Path = ROOT,
    wait: bool = True,
) -> Iterator[int]:
    """Run `server` (uvicorn with uvloop and httptools, or granian) with `workers` workers on
    `target`, pinned to CPU `cpu` when given; yield its port once `ready_path` answers.

    The port's server process id is `pid_of(port)` (for its CPU time and memory). With
    `wait=False` the port is yielded at once (`wait_until_up` it)."""
    port = free_port()
    command = _server_command(server, target, port, workers)
    # No load balancer to tell: stop at once on SIGTERM (see docs/resilience.md).
    env = {"SHUTDOWN_DRAIN_SECONDS": "0", **env}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
    _PROCESSES[port] = process.pid
    try:
        if wait:
            wait_until_up(port, ready_path)
        if cpu is not None:  # after start-up: importing the app is not what is measured
            pin(process.pid, cpu)
        yield port
    finally:
        _PROCESSES.pop(port, None)
        process.terminate()
        process.wait(timeout=10)


_PROCESSES: dict[int, int] = {}


class Group:
    """Several servers running at once (`start` each), all stopped when the block ends."""

    def __init__(self, server: str, *, cpu: int | None) -> None:
        self.server, self.cpu = server, cpu
        self.ports: dict[str, int] = {}
        self._stack = ExitStack()

    def __enter__(self) -> "Group":
        self._stack.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(None, None, None)

    def start(self, how: dict[str, dict[str, Any]]) -> None:
        """Start a server per entry of `how` (name: target, env, cwd, server); return once all
        answer."""
        for name, options in how.items():
            cwd = Path(options.get("cwd", ROOT))
            server = options.get("server", self.server)
            started = running(options["target"], options["env"], cpu=self.cpu,
                              server=server, cwd=cwd, wait=False)  # fmt: skip
            self.ports[name] = self._stack.enter_context(started)
        for name in how:
            wait_until_up(self.ports[name], "/docs")
            if self.cpu is not None:
                pin(pid_of(self.ports[name]), self.cpu)


def pid_of(port: int) -> int:
    """The process id of the (single-worker) server `running` started on `port`."""
    return _PROCESSES[port]


def pin(pid: int, cpu: int) -> None:
    """Run process `pid`, its threads and its child processes (workers) on CPU `cpu` only."""
    if (os.cpu_count() or 1) < 2:
        return
    children = [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if _parent_of(stat) == pid
    ]
    for process in (pid, *children):
        for thread in Path(f"/proc/{process}/task").iterdir():
            os.sched_setaffinity(int(thread.name), {cpu})


def _parent_of(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _pinned(cpu: int | None) -> list[str]:
    taskset = shutil.which("taskset")
    if cpu is None or taskset is None or (os.cpu_count() or 1) < 2:
        return []
    return [taskset, "-c", str(cpu)]


def _server_command(server: str, target: list[str], port: int, workers: int) -> list[str]:
    if server == "granian":
        factory = "--factory" in target
        app = next(arg for arg in target if ":" in arg)
        # One worker, one thread of its own runtime: the same single core as uvicorn gets.
        return [sys.executable, "-m", "granian", "--interface", "asgi", *(["--factory"] * factory),
                "--port", str(port), "--workers", str(workers), "--runtime-threads", "1",
                "--loop", "uvloop", "--no-ws", "--log-level", "warning", app]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--no-access-log",
            "--no-proxy-headers", "--loop", "uvloop", "--http", "httptools",
            "--workers", str(workers)]  # fmt: skip


def wait_until_up(port: int, path: str) -> None:
    """Return once `path` answers on `port`; fail after 90 s."""
    deadline = time.monotonic() + 300  # workers import the whole app: slow on a busy machine
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


@dataclass(frozen=True)
class Load:
    """What one `wrk` run measured, and the server CPU time it cost per request."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float  # server CPU (user + system) per request, in microseconds


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(output: str, percent: str) -> float:
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def load(
    port: int, path: str, *, seconds: float, connections: int, script: Path, cpu: int | None = None
) -> Load:
    """Load `path` with wrk (driven by the Lua `script`, pinned to `cpu`); return what it saw.

    Errors are non-2xx answers plus socket errors (connect, read, write, timeout)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    command = [*_pinned(cpu), wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
               "-s", str(script), f"http://127.0.0.1:{port}{path}"]  # fmt: skip
    pid = _PROCESSES.get(port)
    before = cpu_seconds(pid) if pid else 0.0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before if pid else 0.0
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise RuntimeError(output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    requests = int(total.group(1))
    return Load(
        rps=float(rate.group(1)),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        errors=errors,
        requests=requests,
        cpu_us=used / max(requests, 1) * 1e6,
    )
