"""Worker and scheduler processes for tests, the app that feeds them, and slow mail."""

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import delete

from app.deps import resources_of
from app.jobs.models import Job
from app.main import create_app
from tests.e2e.server import server_env
from tests.harness import client_for, free_port, make_settings
from tests.processes import log_file_lines, server_process, wait_until
from tests.smtp import Inbox

STARTUP_SECONDS = 120.0  # a process imports the whole app: tens of seconds on a busy machine


def job_settings(
    database_url: str, redis_url: str, directory: Path, **extra: str
) -> dict[str, str]:
    """Settings shared by the test's app and its worker and scheduler processes."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JOBS_RESULTS_DIR": str(directory / "results"),
        "JOBS_DISPATCH_INTERVAL_SECONDS": "0.2",
        "JOBS_RETRY_BASE_SECONDS": "0.2",
        "JOBS_EAGER": "false",
        **extra,
    }


@dataclass
class JobProcess:
    """A running `app worker` or `app scheduler` process and its JSON log."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in log_file_lines(self.log) if line.get("event") == event]

    def live(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the process exited:\n{self.log.read_text()[-3000:]}")
        try:
            url = f"http://127.0.0.1:{self.port}/live"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False


@contextmanager
def job_process(
    role: str, directory: Path, settings: dict[str, str], *extra: str, module: str = "app.cli"
) -> Iterator[JobProcess]:
    """Run a worker or scheduler (of the CLI `module`) until its probe answers; stop it after."""
    port = free_port()
    log = directory / f"{role}-{port}.log"
    command = [sys.executable, "-m", module, role, "--port", str(port), *extra]
    with server_process(command, log, server_env(**settings)) as process:
        started = JobProcess(process, log, port)
        wait_until(started.live, role, seconds=STARTUP_SECONDS)
        yield started


@asynccontextmanager
async def feeding_app(settings: dict[str, str]) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The web app on the same database and broker, committing for real; jobs removed after."""
    app = create_app(make_settings(**settings, JWT_SECRET=server_env()["JWT_SECRET"]))
    async with LifespanManager(app), client_for(app) as client:
        try:
            yield app, client
        finally:
            async with resources_of(app).session_factory() as session:
                await session.execute(delete(Job))
                await session.commit()


async def poll(read: Any, until: Any, seconds: float = 60.0) -> Any:
    """Call `read()` until `until(value)` holds; return the value."""
    deadline = time.monotonic() + seconds
    while True:
        value = await read()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"still {value}"
        await asyncio.sleep(0.1)


class SlowInbox(Inbox):
    """An SMTP sink that takes `seconds` to accept each message.

    It counts the messages it started, and the most it was accepting at once (`peak`).
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = 0
        self.accepting = 0
        self.peak = 0

    async def handle_DATA(  # noqa: N802 - the hook name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.started += 1
        self.accepting += 1
        self.peak = max(self.peak, self.accepting)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.accepting -= 1
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def slow_smtp(seconds: float) -> Iterator[tuple[int, SlowInbox]]:
    """An SMTP server on loopback that takes `seconds` per message: (port, inbox)."""
    inbox, port = SlowInbox(seconds), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def smtp_to(port: int) -> dict[str, str]:
    """Mail settings for an SMTP server on loopback without TLS."""
    return {"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
            "SMTP_STARTTLS": "false", "SMTP_TIMEOUT": "10"}  # fmt: skip
