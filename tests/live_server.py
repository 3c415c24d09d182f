"""One real server process on a free port, with its own migrated SQLite file: what a user runs."""

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.e2e.server import server_env
from tests.harness import free_port
from tests.identity import DEFAULT_PASSWORD
from tests.migrations import migrate
from tests.processes import server_process, wait_until


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running `uvicorn` worker and the file it logs to."""

    url: str
    log: Path

    def sign_up(self, email: str, password: str = DEFAULT_PASSWORD) -> str:
        """Register over HTTP and return an access token."""
        with httpx2.Client(base_url=self.url, timeout=30) as client:
            created = client.post("/api/v1/users", json={"email": email, "password": password})
            assert created.status_code == 201, created.text
            login = client.post(
                "/api/v1/auth/login", data={"username": email, "password": password}
            )
            assert login.status_code == 200, login.text
            token: str = login.json()["access_token"]
            return token


@contextmanager
def live_server(directory: Path, **settings: str) -> Iterator[LiveServer]:
    """Serve the app with one uvicorn worker until the block ends; `settings` as env vars."""
    database = f"sqlite+aiosqlite:///{directory / 'live.db'}"
    asyncio.run(migrate(database, "head"))
    port = free_port()
    log = directory / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--no-proxy-headers", "--no-access-log", "--host", "127.0.0.1", "--port", str(port)]
    env = server_env(DATABASE_URL=database, **settings)
    with server_process(command, log, env) as process:
        server = LiveServer(f"http://127.0.0.1:{port}", log)

        def started() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"uvicorn exited:\n{log.read_text()}")
            try:
                return httpx2.get(f"{server.url}/api/v1/health/live", timeout=2).status_code == 200
            except httpx2.TransportError:
                return False

        wait_until(started, "uvicorn", seconds=90)
        yield server
