"""A private PostgreSQL for fault tests: its own data directory and port, stopped at will.

PostgreSQL refuses to run as root: when the tests run as root (CI), `initdb` and the server run
as the `postgres` system user, in a temporary directory that user owns.
"""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.harness import free_port
from tests.processes import wait_until
from tests.services import service_unavailable

SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c max_connections=200"
)


def _binaries() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not versions:
        service_unavailable("PostgreSQL server binaries (initdb) are not installed")
    return Path(versions[-1]).parent


class PostgresServer:
    """`initdb` once, then start, stop (fast: connections are cut) and start again."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="e2e-postgres-"))
        self.data = self.directory / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.directory, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)  # noqa: S603

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} {SERVER_SETTINGS}"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Stop at once: sessions are ended (the server says so), new connections refused."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def freeze(self) -> None:
        """Stop every process of the server without ending it (SIGSTOP): connections hang,
        nothing answers, nothing is refused: a hung host or a network partition.

        The postmaster first, and its children only once it has stopped: a backend it forked
        after the list was read would otherwise go on serving its connection.
        """
        postmaster = self._postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        wait_until(lambda: _state(postmaster) == "T", "the postmaster to stop", seconds=10)
        for pid in _children(postmaster):
            _signal(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT): its children first, then the postmaster.

        A child that had exited is a zombie until the postmaster reaps it; continued first,
        the postmaster could reap one before it is signalled.
        """
        postmaster = self._postmaster()
        for pid in _children(postmaster):
            _signal(pid, signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)

    def running(self) -> bool:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0  # noqa: S603

    def start_if_stopped(self) -> None:
        if not self.running():
            self.start()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def connect(self, database: str = "postgres") -> asyncpg.Connection:
        """A connection of the test's own (never one of the app's)."""
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database=database
        )

    async def execute(self, sql: str, database: str = "postgres") -> None:
        connection = await self.connect(database)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def fetch_value(self, sql: str, database: str = "postgres") -> object:
        connection = await self.connect(database)
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    async def terminate_backends(self, database: str) -> int:
        """End every session on `database` (as a failover or an operator would)."""
        connection = await self.connect()
        try:
            ended = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await connection.close()
        return int(ended)


def _stat(pid: int) -> list[str]:
    """The fields of `/proc/PID/stat` after the command name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _state(pid: int) -> str:
    return _stat(pid)[0]


def _signal(pid: int, signum: signal.Signals) -> None:
    """Send `signum` to a child of the postmaster, unless it has ended since it was listed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _children(parent: int) -> list[int]:
    """The processes whose parent is `parent`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(int(stat.parent.name))
        except (OSError, IndexError):  # the process ended while the list was read
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found
