"""`make test` on a full run: the suite in two pytest processes at once, each under coverage.

The tests that mostly wait on other processes (tests/e2e: private servers; tests/contract and
tests/browser: a live server, a browser) run beside the rest, on a database and Redis db of
their own, so a 2-core machine finishes the suite in about half the time. Group A prints as
it goes; group B's output follows when it ends. Exits non-zero if either group fails.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BESIDE = ("tests/e2e", "tests/contract", "tests/browser")


def _own_database(url: str) -> str:
    """The same server, the database name with `_b` appended."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_b"))


def _own_redis_db(url: str) -> str:
    """The same server, the next lower db number (15 → 14)."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number - 1 if number > 0 else 1}"))


def _environment_b() -> dict[str, str]:
    env = dict(os.environ)
    if "TEST_DATABASE_URL" in env:
        env["TEST_DATABASE_URL"] = _own_database(env["TEST_DATABASE_URL"])
    if "TEST_REDIS_URL" in env:
        env["TEST_REDIS_URL"] = _own_redis_db(env["TEST_REDIS_URL"])
    return env


def main() -> int:
    """Run both groups; return 0 only if both pass."""
    pytest = [sys.executable, "-m", "coverage", "run", "-m", "pytest"]
    with tempfile.TemporaryDirectory(prefix="tests-") as scratch:
        root = Path(scratch)
        log_b = root / "b.log"
        with log_b.open("w") as out:
            group_b = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [*pytest, f"--basetemp={root / 'b'}", *BESIDE],
                env=_environment_b(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            ignored = [f"--ignore={path}" for path in BESIDE]
            code_a = subprocess.call([*pytest, f"--basetemp={root / 'a'}", *ignored])  # noqa: S603
            code_b = group_b.wait()
        print(f"\n===== {' '.join(BESIDE)} =====", flush=True)
        print(log_b.read_text(), flush=True)
    return code_a or code_b


if __name__ == "__main__":
    raise SystemExit(main())
