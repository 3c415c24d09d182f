"""Print `export` lines for the test services that answer on their default local addresses.

`make test` evaluates the output, so a developer with PostgreSQL and Redis running gets the
whole suite without configuring anything. Variables already set are left alone.
"""

import os
import shlex
import socket

DEFAULTS = {
    "TEST_DATABASE_URL": ("127.0.0.1", 5432, "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    "TEST_REDIS_URL": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/15"),
}


def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    """Print an export for each unset variable whose service answers."""
    for name, (host, port, url) in DEFAULTS.items():
        if name not in os.environ and answers(host, port):
            print(f"export {name}={shlex.quote(url)}")


if __name__ == "__main__":
    main()
