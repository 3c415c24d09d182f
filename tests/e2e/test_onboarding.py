"""A new user's first minutes: `make run` and `make test` from a fresh clone, with only the
system Python (no uv on PATH; pip refuses to install into it, PEP 668)."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx2
import pytest

from tests.harness import free_port
from tests.processes import wait_until
from tests.services import service_unavailable

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Only the distribution's directories: no uv, no virtual environment, no pyenv shims.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
FIRST_RUN_SECONDS = 600.0
# A small subset on SQLite; the clone's suite must not touch the outer run's databases.
SUBSET = "tests/health -k 'not postgresql'"


def clean_environment() -> dict[str, str]:
    """The caller's environment without uv, virtual environments, test service settings or
    pytest's own (`PYTEST_ADDOPTS`, the xdist worker's name), which the outer run may set."""
    dropped = (
        "VIRTUAL_ENV",
        "UV_",
        "PYTHON",
        "TEST_",
        "REQUIRE_SERVICES",
        "PYENV",
        "COV_",
        "PYTEST_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    # Set but empty: `make test` leaves them alone, so the subset cannot reach the shared
    # PostgreSQL and Redis that the outer run is using.
    return env | {"PATH": SYSTEM_PATH, "TEST_DATABASE_URL": "", "TEST_REDIS_URL": ""}


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    for tool in ("git", "make"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            service_unavailable(f"{tool} is not installed")
    if not SYSTEM_PYTHON.exists():
        service_unavailable("no system Python at /usr/bin/python3")
    assert shutil.which("uv", path=SYSTEM_PATH) is None, "uv must not be on the system PATH"
    clone = tmp_path / "clone"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["git", "clone", "--quiet", str(ROOT), str(clone)],  # noqa: S607
        check=True,
        timeout=120,
    )
    return clone


def serve_until_live(clone: Path, env: dict[str, str]) -> None:
    """`make run` until it serves its liveness probe, then stop it (the whole process group)."""
    port = free_port()
    log = clone.parent / "make-run.log"
    with log.open("wb") as output:
        make_run = subprocess.Popen(  # noqa: S603 - fixed arguments
            ["make", "run", f"PORT={port}"],  # noqa: S607
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def serves() -> bool:
            if make_run.poll() is not None:
                raise AssertionError(f"make run exited:\n{log.read_text()}")
            try:
                live = httpx2.get(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=1)
            except httpx2.HTTPError:
                return False
            return live.status_code == 200

        wait_until(serves, "make run to serve", seconds=FIRST_RUN_SECONDS)
    finally:
        if make_run.poll() is None:
            os.killpg(make_run.pid, signal.SIGTERM)
            make_run.wait(timeout=60)


# Two first runs, each bounded by FIRST_RUN_SECONDS, plus the clone.
@pytest.mark.timeout(2 * FIRST_RUN_SECONDS + 300)
def test_make_run_then_make_test_from_a_fresh_clone(fresh_clone: Path) -> None:
    env = clean_environment()
    serve_until_live(fresh_clone, env)
    assert (fresh_clone / ".tools" / "bin" / "uv").exists()
    assert (fresh_clone / "app.db").exists()
    # Running installed only what running needs.
    assert not (fresh_clone / ".venv" / "bin" / "pytest").exists()

    for target in ("test", "coverage"):  # the first installs what testing needs
        run = subprocess.run(  # noqa: S603 - fixed arguments
            ["make", target, f"PYTEST_ARGS={SUBSET}"],  # noqa: S607
            cwd=fresh_clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=FIRST_RUN_SECONDS,
            check=False,
        )
        printed = run.stdout + run.stderr
        assert run.returncode == 0, printed[-5000:]
        assert " passed" in printed
        # The coverage report (without its gate on a subset) is `make coverage`'s only.
        assert ("TOTAL" in printed) is (target == "coverage"), target
