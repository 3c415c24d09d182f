"""The service as it runs in production: `uvicorn --workers 2`, a database, Redis, its log."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager

from app.main import create_app
from tests.harness import client_for, free_port, make_settings
from tests.identity import signed_up, unique_email
from tests.processes import log_file_lines, server_process, wait_for_workers

STARTUP_SECONDS = 90.0
JWT_SECRET = "e2e-secret-for-fault-tests-0123456789abcdef0123456789abcdef01234567"
# What every e2e server gets: cheap hashing, rate limiting on Redis with limits nobody reaches
# (every request still pays its Redis calls), short deadlines so faults show in seconds.
BASE_SETTINGS = {
    "ENVIRONMENT": "test",
    "LOG_FORMAT": "json",
    "JWT_SECRET": JWT_SECRET,
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "1024",
    "PASSWORD_HASH_PARALLELISM": "1",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "RATE_LIMIT_PER_HOUR": "1000000",
    "REQUEST_TIMEOUT_SECONDS": "3",
    "DATABASE_POOL_TIMEOUT": "2",
    "DATABASE_STATEMENT_TIMEOUT_MS": "2000",
    "DATABASE_CONNECT_TIMEOUT": "1",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    "GC_FREEZE_AFTER_STARTUP": "false",
}


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, Any]]:
        return log_file_lines(self.log)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]

    def assert_clean_log(self) -> None:
        """No unexpected exception and no exhausted Redis pool in the server's log."""
        text = self.log.read_text(errors="replace")
        assert "unhandled_exception" not in text
        assert "MaxConnectionsError" not in text
        assert "Traceback" not in text, text[text.index("Traceback") :][:2000]


def server_env(**settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RATE_LIMIT_", "REDIS_", "DATABASE_", "FIRST_SUPERUSER_"))
    }
    return {**env, **BASE_SETTINGS, **settings}


@contextmanager
def serving(directory: Path, **settings: str) -> Iterator[Server]:
    """Run `app serve` with two workers until both have started (even with the database down).

    The production command (the container's): uvicorn with the service's own protocol limits,
    logging, proxy handling and shutdown.
    """
    port = free_port()
    log = directory / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "app.cli", "serve", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with server_process(command, log, server_env(**settings)) as process:
        server = Server(port, process, log)

        # Each worker imports the whole app (seconds on a busy machine): the wait is generous.
        wait_for_workers(process, log, port, 2, what="two uvicorn workers", seconds=STARTUP_SECONDS)
        yield server


async def user_headers(database_url: str) -> tuple[str, dict[str, str]]:
    """Register and log in a user in-process (no server needed); return email and header."""
    email = unique_email("e2e")
    app = create_app(make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET))
    async with LifespanManager(app), client_for(app) as client:
        return email, await signed_up(client, email)
