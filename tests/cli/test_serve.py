"""`app serve` as a real process: our logs, no proxy trust, recycling, graceful stop; and
`app verify` run against it (passes) and against a deliberately broken server (fails)."""

import asyncio
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from app.cli.serve import uvicorn_config
from app.server_limits import BoundedHttpToolsProtocol
from tests.e2e.server import server_env
from tests.harness import free_port, make_settings
from tests.migrations import ALEMBIC_INI, migrate
from tests.processes import log_file_lines, server_process, started_events, wait_until

ROOT = ALEMBIC_INI.parent
STARTUP_SECONDS = 90.0
# The e2e servers' settings, with quotas the verifier reaches quickly.
LIMITS = {"RATE_LIMIT_PER_MINUTE": "30", "RATE_LIMIT_PER_HOUR": "1000", "RATE_LIMIT_BURST": "0"}


def test_the_uvicorn_configuration() -> None:
    settings = make_settings(
        SHUTDOWN_GRACE_SECONDS=12, REQUEST_HEADER_TIMEOUT_SECONDS=4, MAX_REQUEST_HEADER_BYTES=8192
    )
    config = uvicorn_config(
        settings,
        host="0.0.0.0",  # noqa: S104
        port=9000,
        workers=3,
        limit_max_requests=1000,
    )
    assert (config.app, config.factory) == ("app.main:create_app", True)
    assert (config.host, config.port, config.workers) == ("0.0.0.0", 9000, 3)  # noqa: S104
    assert config.proxy_headers is False
    assert config.access_log is False
    assert config.log_config is None
    assert config.server_header is False
    assert config.timeout_graceful_shutdown == 12
    assert (config.limit_max_requests, config.limit_max_requests_jitter) == (1000, 100)
    assert config.http is BoundedHttpToolsProtocol
    assert (config.header_timeout, config.max_header_bytes) == (4, 8192)
    # Each worker process gets the configuration pickled, its bounds with it.
    copy = pickle.loads(pickle.dumps(config))  # noqa: S301 - our own object
    assert (copy.http, copy.header_timeout, copy.max_header_bytes) == (
        BoundedHttpToolsProtocol,
        4,
        8192,
    )


def environment(directory: Path, **extra: str) -> dict[str, str]:
    database = f"sqlite+aiosqlite:///{directory / 'app.db'}"
    return server_env(DATABASE_URL=database, SHUTDOWN_GRACE_SECONDS="7", **LIMITS, **extra)


@contextmanager
def serving(
    directory: Path, *args: str, **settings: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python -m app.cli serve` on a free port, once it answers its liveness probe."""
    port = free_port()
    asyncio.run(migrate(f"sqlite+aiosqlite:///{directory / 'app.db'}", "head"))
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args]
    log = directory / f"serve-{port}.log"
    url = f"http://127.0.0.1:{port}"
    with server_process(command, log, environment(directory, **settings)) as process:

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"app serve exited:\n{log.read_text()}")
            try:
                # A short timeout would leave requests queued behind a slow start; each one
                # still counts towards --limit-max-requests, so a worker could be recycled by
                # probes nobody waits for any more, again and again.
                return httpx2.get(f"{url}/api/v1/health/live", timeout=30).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(answers, "app serve", seconds=STARTUP_SECONDS)
        yield url, process, log


def run_verify(url: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.cli", "verify", url, *args]
    return subprocess.run(  # noqa: S603 - fixed arguments
        command,
        cwd=directory,
        env=environment(directory, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_passes_verify_and_stops_gracefully(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, process, log):
        spoofed = httpx2.get(f"{url}/api/v1/meta", headers={"X-Forwarded-For": "203.0.113.9"})
        assert "server" not in spoofed.headers
        result = run_verify(url, tmp_path, "--expect-rate-limit", "--max-requests", "100")
        assert result.returncode == 0, result.stdout + result.stderr
        for name in ("health.ready", "account.delete", "rate_limit.enforced"):
            assert name in result.stdout
        assert "FAIL" not in result.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    lines = log_file_lines(log)
    assert [line for line in lines if line.get("not_json")] == []
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests
    assert {line["client"] for line in requests} == {"127.0.0.1"}  # X-Forwarded-For ignored
    assert any(line.get("event") == "shutdown" for line in lines)


def test_verify_fails_against_a_broken_server(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.cli.broken_app:app", "--port", str(port)]
    command += ["--app-dir", str(ROOT)]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, tmp_path / "broken.log", environment(tmp_path)):

        def answers() -> bool:
            try:
                return httpx2.get(f"{url}/health", timeout=1).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(answers, "the broken server", seconds=STARTUP_SECONDS)
        result = run_verify(url, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("app: error: ")
    for name in ("health.ready", "errors.not_found", "security_headers", "account.register"):
        assert name in error
    assert "health.live" not in error


def _live_status(url: str) -> int:
    """One liveness request on a new connection, as clients come.

    A retiring worker reads what its accepted connections already sent before it closes them
    (app/shutdown.py), but a client that connects and then sends only after that moment sees
    the close (a clean one or a reset, by timing) and sends its idempotent request again,
    once, as HTTP clients do.
    """
    with httpx2.Client(timeout=30) as client:
        try:
            return client.get(f"{url}/api/v1/health/live").status_code
        except (httpx2.RemoteProtocolError, httpx2.ReadError):
            pass
    with httpx2.Client(timeout=30) as client:
        return client.get(f"{url}/api/v1/health/live").status_code


def test_limit_max_requests_recycles_even_a_single_worker(tmp_path: Path) -> None:
    limit = ["--limit-max-requests", "3", "--limit-max-requests-jitter", "0"]
    with serving(tmp_path, "--workers", "1", *limit) as (url, process, log):
        # uvicorn checks the limit on its 0.1 s tick, so a quick burst may all reach the first
        # worker: keep asking (at least five times) until its successor has started.
        statuses: list[int] = []
        deadline = time.monotonic() + STARTUP_SECONDS
        while len(statuses) < 5 or (started_events(log) < 2 and time.monotonic() < deadline):
            statuses.append(_live_status(url))
            time.sleep(0.05)
        assert set(statuses) == {200}
        assert process.poll() is None
        assert started_events(log) >= 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
