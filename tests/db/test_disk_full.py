"""SQLite on a full disk: writes are refused with a 503 problem, reads go on, nothing is lost.

The server runs with a cap on the size of any file it writes (RLIMIT_FSIZE, what a full disk
looks like to SQLite: each write past it fails, `EFBIG`), set a little above the migrated
database's size, so it fills up after a few dozen sign-ups.
"""

import asyncio
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import httpx2

from tests.e2e.server import server_env
from tests.harness import free_port
from tests.identity import DEFAULT_PASSWORD
from tests.migrations import migrate
from tests.processes import server_process, serves_liveness, wait_until

ROOM_BYTES = 64 * 1024  # a few dozen accounts, with their WAL frames


def test_writes_on_a_full_disk_are_503s_and_every_201_is_kept(tmp_path: Path) -> None:
    database = tmp_path / "live.db"
    url = f"sqlite+aiosqlite:///{database}"
    asyncio.run(migrate(url, "head"))
    cap = database.stat().st_size + ROOM_BYTES
    port = free_port()
    command = [sys.executable, "-c", _CAPPED.format(cap=cap), "--factory", "app.main:create_app"]
    command += ["--no-proxy-headers", "--no-access-log", "--host", "127.0.0.1", "--port", str(port)]
    env = server_env(DATABASE_URL=url, RATE_LIMIT_ENABLED="false")
    statuses: Counter[int] = Counter()
    created: list[str] = []
    with server_process(command, tmp_path / "server.log", env) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: serves_liveness(process, base), "uvicorn", seconds=90)
        with httpx2.Client(base_url=base, timeout=10) as client:
            for number in range(150):
                email = f"full-{number}@example.com"
                body = {"email": email, "password": DEFAULT_PASSWORD}
                response = client.post("/api/v1/users", json=body)
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    created.append(email)
                else:
                    refused = response
            login = {"username": created[0], "password": DEFAULT_PASSWORD}
            read = client.post("/api/v1/auth/login", data=login)
            ready = client.get("/api/v1/health/ready")
    with sqlite3.connect(database) as connection:
        stored = {row[0] for row in connection.execute("SELECT email FROM users")}
    assert set(statuses) == {201, 503}, statuses  # full after some: never a 500
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "database_unavailable"
    assert refused.headers["retry-after"] == "1"
    assert set(created) <= stored  # every account answered 201 was kept
    assert read.status_code in {200, 503}  # a login writes (its attempt): never a 500
    assert ready.status_code == 200  # reads still work: the database answers


# Python ignores SIGXFSZ, so a write past the cap fails with EFBIG instead of killing it.
_CAPPED = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, ({cap}, {cap})); "
    "sys.argv = ['uvicorn', *sys.argv[1:]]; "
    "runpy.run_module('uvicorn', run_name='__main__')"
)
